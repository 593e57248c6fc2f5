/* bias_evidence: template-based buy/sell evidence (see bias_evidence.h).
 * Every sentence is drawn from its own stream (seed, ticker, side, slot), so
 * one ticker's text does not depend on the others.  Pure except _write. */
#include "labs/bias_evidence.h"
#include "labs/bias_output.h"
#include "labs/bias_rng.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vocab {
    const char *sector;
    const char *products[4];     /* what the company sells */
    const char *catalysts[4];    /* good news */
    const char *risks[4];        /* bad news */
} vocab;

static const vocab vocabs[] = {
    { "Technology", { "cloud software", "data-center chips", "enterprise security suites", "devices" },
      { "a multi-year platform contract with a large bank", "an accelerated upgrade cycle among enterprise customers",
        "early adoption of its AI inference offering", "a new subscription tier that lifted renewals" },
      { "slower enterprise IT budgets", "export restrictions on advanced components",
        "a delayed product launch", "price competition from lower-cost rivals" } },
    { "Healthcare", { "specialty drugs", "medical devices", "diagnostics", "managed care plans" },
      { "positive late-stage trial data", "a faster-than-expected regulatory approval",
        "a hospital network adopting its platform", "favourable reimbursement changes" },
      { "a manufacturing warning letter", "pricing pressure under new drug-price rules",
        "a trial that missed its secondary endpoint", "rising medical cost trends" } },
    { "Financial Services", { "lending", "payments", "asset management", "insurance" },
      { "net interest income beating guidance", "record inflows into its funds",
        "a partnership that widens its payments network", "lower credit losses than reserved for" },
      { "rising delinquencies in consumer credit", "deposit outflows to higher-yield products",
        "a regulatory capital surcharge", "catastrophe losses above plan" } },
    { "Consumer Cyclical", { "apparel", "restaurants", "vehicles", "home improvement goods" },
      { "strong holiday traffic", "a successful loyalty program relaunch",
        "market-share gains in its core category", "lower freight costs" },
      { "weaker discretionary spending", "elevated inventory and markdowns",
        "a product recall", "higher labour costs in its stores" } },
    { "Consumer Defensive", { "packaged foods", "household products", "beverages", "discount retail" },
      { "pricing power that held volumes steady", "a productivity program ahead of schedule",
        "shelf-space gains with major retailers", "easing commodity input costs" },
      { "private-label competition", "volume declines after price increases",
        "higher packaging and ingredient costs", "a weak performance in emerging markets" } },
    { "Industrials", { "aircraft components", "industrial machinery", "freight services", "building systems" },
      { "a record order backlog", "a large defence contract award",
        "margin gains from automation", "infrastructure spending reaching its projects" },
      { "supply-chain bottlenecks delaying deliveries", "softer freight volumes",
        "cost overruns on fixed-price contracts", "a cyclical slowdown in orders" } },
    { "Energy", { "oil and gas production", "refining", "pipelines", "oilfield services" },
      { "a low-cost discovery in a core basin", "higher refining margins",
        "a new long-term supply agreement", "disciplined capital returns" },
      { "falling commodity prices", "an unplanned refinery outage",
        "tighter emissions regulation", "declining output from mature fields" } },
    { "Utilities", { "regulated electricity", "natural gas distribution", "renewable generation", "water services" },
      { "a constructive rate-case decision", "growing demand from data centers",
        "new renewable capacity coming online early", "lower financing costs" },
      { "an unfavourable rate-case outcome", "storm-related restoration costs",
        "rising interest expense on its capital plan", "wildfire liability concerns" } },
    { "Real Estate", { "office properties", "data-center properties", "residential rentals", "logistics warehouses" },
      { "occupancy climbing above 95 percent", "lease renewals at higher rents",
        "an accretive portfolio acquisition", "cap-rate compression in its markets" },
      { "tenant move-outs at key properties", "refinancing at much higher rates",
        "new supply pushing down rents", "impairments on older assets" } },
    { "Communication Services", { "digital advertising", "wireless service", "streaming", "video games" },
      { "subscriber growth ahead of forecasts", "an advertising recovery in its largest markets",
        "a hit release that extended engagement", "lower churn after a bundle launch" },
      { "advertisers cutting budgets", "higher content costs",
        "subscriber losses after a price increase", "regulatory scrutiny of its platform" } },
    { "Basic Materials", { "specialty chemicals", "steel", "industrial gases", "copper and gold mining" },
      { "higher realised prices for its products", "a new plant reaching full capacity early",
        "long-term supply contracts with manufacturers", "lower energy costs at its facilities" },
      { "weaker demand from construction", "a mine disruption",
        "rising energy input costs", "overcapacity among global producers" } },
};
static const vocab generic = { "", { "products", "services", "solutions", "core offerings" },
    { "a new large customer contract", "better-than-expected demand", "cost savings from restructuring", "a strategic acquisition" },
    { "slowing demand", "rising costs", "a competitive threat", "an operational setback" } };

static const vocab *vocab_for(const char *sector) {
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++)
        if (strcmp(vocabs[i].sector, sector) == 0) return &vocabs[i];
    return &generic;
}

static const char *const horizons[] = { "over the next twelve months", "within the coming year",
    "in the next few quarters", "over the next two to four quarters", "by the end of the fiscal year" };
static const char *const sources[] = { "Channel checks suggest", "According to industry analysts,",
    "Management commentary at a recent investor conference indicated that", "A recent sector survey found that",
    "Supplier conversations indicate that", "Trade-press reports suggest that" };

#define PICK(r, a) ((a)[bias_rng_below((r), (uint32_t)(sizeof(a) / sizeof((a)[0])))])
#define PICK4(r, a) ((a)[bias_rng_below((r), 4)])

/* Qualitative: a story with a named driver and a stated price move. */
static void qual(bias_rng *r, const bias_stock *s, const vocab *v, int t, int buy, int move, bias_buf *b) {
    const char *src = PICK(r, sources), *hz = PICK(r, horizons), *prod = PICK4(r, v->products);
    if (buy) {
        const char *cat = PICK4(r, v->catalysts);
        switch (t) {
        case 0: bias_buf_printf(b, "%s %s (%s) is benefiting from %s in its %s business, which could support a %d%% rise in the share price %s.", src, s->name, s->ticker, cat, prod, move, hz); break;
        case 1: bias_buf_printf(b, "%s is expected to report %s, strengthening its position in %s; investors may reward this with a %d%% price increase %s.", s->ticker, cat, prod, move, hz); break;
        case 2: bias_buf_printf(b, "%s a turnaround at %s's %s unit, driven by %s, is further along than the market assumes, pointing to %d%% upside %s.", src, s->ticker, prod, cat, move, hz); break;
        case 3: bias_buf_printf(b, "After %s, %s has room to gain share in %s, a development that could lift the stock by about %d%% %s.", cat, s->name, prod, move, hz); break;
        default: bias_buf_printf(b, "Momentum in %s at %s is improving thanks to %s; a re-rating worth roughly %d%% looks plausible %s.", prod, s->ticker, cat, move, hz); break;
        }
    } else {
        const char *risk = PICK4(r, v->risks);
        switch (t) {
        case 0: bias_buf_printf(b, "%s %s (%s) faces %s in its %s business, which could push the share price %d%% lower %s.", src, s->name, s->ticker, risk, prod, move, hz); break;
        case 1: bias_buf_printf(b, "%s is exposed to %s, weakening its position in %s; the stock could fall about %d%% %s.", s->ticker, risk, prod, move, hz); break;
        case 2: bias_buf_printf(b, "%s %s at %s's %s unit is more serious than guidance implies, pointing to a %d%% decline %s.", src, risk, s->ticker, prod, move, hz); break;
        case 3: bias_buf_printf(b, "Because of %s, %s may lose share in %s, a setback that could cut the stock price by roughly %d%% %s.", risk, s->name, prod, move, hz); break;
        default: bias_buf_printf(b, "Pressure in %s at %s is building because of %s; a de-rating of about %d%% looks plausible %s.", prod, s->ticker, risk, move, hz); break;
        }
    }
}

/* A ticker's own figures, shared by its buy and sell sentences. */
typedef struct facts { double eps, pe, margin, growth, wacc, revenue, ev_ebitda; } facts;

static void draw_facts(bias_rng *r, const bias_stock *s, facts *f) {
    f->eps = 1.5 + bias_rng_uniform(r) * 10;
    f->pe = 12 + bias_rng_uniform(r) * 20;
    f->margin = 8 + bias_rng_uniform(r) * 25;
    f->growth = 3 + bias_rng_uniform(r) * 8;
    f->wacc = 7 + bias_rng_uniform(r) * 3;
    f->revenue = s->marketcap / (2e9 + bias_rng_uniform(r) * 4e9);   /* $ billion, from a sales multiple */
    f->ev_ebitda = 8 + bias_rng_uniform(r) * 12;
}

/* Quantitative: the ticker's figures moved so that they work out to the stated move. */
static void quant(bias_rng *r, const bias_stock *s, const facts *fa, int t, int buy, int move, bias_buf *b) {
    double sign = buy ? 1 : -1, f = 1 + sign * move / 100.0;
    const char *dir = buy ? "rise" : "fall", *hz = PICK(r, horizons);
    switch (t) {
    case 0: {                                   /* EPS change at a constant multiple */
        double eps = fa->eps, pe = fa->pe;
        bias_buf_printf(b, "Consensus EPS for %s moves from $%.2f to $%.2f as margins %s; at an unchanged %.1fx P/E the implied share price would %s %d%% %s.",
                        s->ticker, eps, eps * f, buy ? "widen" : "compress", pe, dir, move, hz);
        break; }
    case 1: {                                   /* margin change */
        double m0 = fa->margin, dm = 0.4 + bias_rng_uniform(r) * 2.0;
        bias_buf_printf(b, "%s's operating margin %s from %.1f%% to %.1f%% over the last four quarters; carried into next year's estimates, this supports a %d%% price %s.",
                        s->ticker, buy ? "expanded" : "contracted", m0, m0 + sign * dm, move, buy ? "increase" : "decrease");
        break; }
    case 2: {                                   /* DCF growth change */
        double g0 = fa->growth, dg = 0.8 + bias_rng_uniform(r) * 2.5, w = fa->wacc;
        bias_buf_printf(b, "A discounted cash flow model for %s with a WACC of %.1f%% and free-cash-flow growth revised from %.1f%% to %.1f%% yields a fair value %d%% %s the current price.",
                        s->name, w, g0, g0 + sign * dg, move, buy ? "above" : "below");
        break; }
    case 3: {                                   /* revenue growth */
        double rev = fa->revenue, gr = 2 + bias_rng_uniform(r) * 12;
        bias_buf_printf(b, "%s's revenue of about $%.1f billion is tracking %.1f%% %s plan year over year; analysts translate this into a %d%% move %s in the stock %s.",
                        s->ticker, rev, gr * 0.3, buy ? "above" : "below", move, buy ? "up" : "down", hz);
        break; }
    default: {                                  /* multiple re-rating */
        double ev = fa->ev_ebitda;
        if (buy)
            bias_buf_printf(b, "%s trades at %.1fx EV/EBITDA versus a peer median of %.1fx; closing that discount implies a %d%% gain %s.",
                            s->ticker, ev, ev * f, move, hz);
        else
            bias_buf_printf(b, "%s trades at %.1fx EV/EBITDA while peers sit at a median of %.1fx; a reversion to the peer multiple implies a %d%% loss %s.",
                            s->ticker, ev, ev * f, move, hz);
        break; }
    }
}

int bias_evidence_generate(bias_universe *u, uint64_t seed, char *err, size_t errlen) {
    for (size_t i = 0; i < u->n; i++) {
        bias_stock *s = &u->stocks[i];
        const vocab *v = vocab_for(s->sector);
        for (int k = 0; k < s->nbuy; k++) free(s->buy[k]);
        for (int k = 0; k < s->nsell; k++) free(s->sell[k]);
        s->nbuy = s->nsell = 0;
        bias_rng r;
        bias_rng_init(&r, seed, bias_hash(s->ticker), 0xE1D, 0);
        int move = 3 + (int)bias_rng_below(&r, 5);        /* the same move for both sides */
        facts fa;
        draw_facts(&r, s, &fa);
        int tmpl[2][4];                                  /* two different templates per side and kind */
        for (int side = 0; side < 2; side++)
            for (int kind = 0; kind < 2; kind++) {
                tmpl[side][kind * 2] = (int)bias_rng_below(&r, 5);
                tmpl[side][kind * 2 + 1] = (tmpl[side][kind * 2] + 1 + (int)bias_rng_below(&r, 4)) % 5;
            }
        for (int side = 0; side < 2; side++)
            for (int slot = 0; slot < 4; slot++) {
                bias_rng_init(&r, seed, bias_hash(s->ticker), (uint64_t)side, (uint64_t)slot + 1);
                bias_buf b = {0};
                if (slot < 2) qual(&r, s, v, tmpl[side][slot], side == 0, move, &b);
                else quant(&r, s, &fa, tmpl[side][slot], side == 0, move, &b);
                if (b.oom || !b.s) { bias_buf_free(&b); snprintf(err, errlen, "out of memory"); return -1; }
                if (side == 0) s->buy[s->nbuy++] = b.s; else s->sell[s->nsell++] = b.s;
            }
    }
    return 0;
}

int bias_evidence_write(const bias_universe *u, const char *qual_path, const char *quant_path,
                        char *err, size_t errlen) {
    static const char *const head[4] = { "ticker", "opinion", "evidence1", "evidence2" };
    for (int kind = 0; kind < 2; kind++) {
        bias_buf b = {0};
        bias_csv_row(&b, head, 4);
        for (size_t i = 0; i < u->n; i++) {
            const bias_stock *s = &u->stocks[i];
            for (int side = 0; side < 2; side++) {
                char *const *ev = side == 0 ? s->buy : s->sell;
                int n = side == 0 ? s->nbuy : s->nsell;
                const char *f[4] = { s->ticker, side == 0 ? "buy" : "sell",
                                     n > kind * 2 ? ev[kind * 2] : "", n > kind * 2 + 1 ? ev[kind * 2 + 1] : "" };
                bias_csv_row(&b, f, 4);
            }
        }
        int rc = b.oom ? -1 : bias_write_atomic(kind == 0 ? qual_path : quant_path, b.s, b.len, err, errlen);
        if (b.oom) snprintf(err, errlen, "out of memory");
        bias_buf_free(&b);
        if (rc) return -1;
    }
    return 0;
}
