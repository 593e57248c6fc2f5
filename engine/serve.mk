# engine/serve: the OpenAI-compatible server (engine/serve*.c, engine/prometheus.c)
BINS += $(BINDIR)/engine/serve
$(BINDIR)/engine/serve: $(BUILD)/engine/serve_main.o $(LIBS)
	@mkdir -p $(@D)
	$(LINK)
