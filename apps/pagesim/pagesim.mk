# apps/pagesim: the pagesim command; every apps/pagesim/*.c is part of it
# (pagesim_main.c dispatches to cmd_run.c, cmd_plan.c, cmd_calibrate.c, cmd_viz.c).
PAGESIM_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard apps/pagesim/*.c))
BINS += $(BINDIR)/pagesim
$(BINDIR)/pagesim: $(PAGESIM_OBJS) $(BUILD)/apps/common/front.o $(LIBS)
	@mkdir -p $(@D)
	$(LINK)
