# engine/serve: the OpenAI-compatible server's front end (the library: serve/)
BINS += $(BINDIR)/engine/serve
$(BINDIR)/engine/serve: $(BUILD)/apps/engine/serve_main.o $(BUILD)/apps/engine/cli.o $(BUILD)/apps/engine/cli_lora.o \
                       $(BUILD)/apps/common/front.o $(LIBS)
	@mkdir -p $(@D)
	$(LINK)
