# engine/merge: a LoRA adapter folded into its base model (engine/merge.c); no GPU needed
BINS += $(BINDIR)/engine/merge
$(BINDIR)/engine/merge: $(BUILD)/apps/engine/merge_main.o $(BUILD)/apps/common/front.o $(LIBS)
	@mkdir -p $(@D)
	$(LINK)
