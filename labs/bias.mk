# labs/bias: the investment-bias experiment (issue 5).
BINS += $(BINDIR)/labs/bias
$(BINDIR)/labs/bias: $(BUILD)/labs/bias_main.o $(LIBS) ; @mkdir -p $(@D); $(LINK)
