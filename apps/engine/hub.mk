# apps/engine/hub.mk — the engine/hub command (model download, tokenizer and chat tools).
BINS += $(BINDIR)/engine/hub
$(BINDIR)/engine/hub: $(BUILD)/apps/engine/hub_main.o $(BUILD)/apps/common/front.o $(LIBS)
	@mkdir -p $(@D)
	$(LINK)
