# sim: the pagesim command (its subcommands live in sim/cmd_*.c and viz/cmd_viz.c)
BINS += $(BINDIR)/pagesim
$(BINDIR)/pagesim: $(BUILD)/sim/pagesim_main.o $(LIBS)
	@mkdir -p $(@D)
	$(LINK)
