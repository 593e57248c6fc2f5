/* bias_evidence: the project's own evidence generator.  For every stock it
 * writes two qualitative and two quantitative buy sentences and as many sell
 * sentences, in the study's schema (ticker,opinion,evidence1,evidence2), from
 * templates filled with sector vocabulary and drawn numbers, deterministic by
 * seed.  Buy and sell sides of a ticker claim the same size of price move, so
 * the evidence stays balanced.  Writes only the files it is asked to. */
#ifndef BIAS_EVIDENCE_H
#define BIAS_EVIDENCE_H
#include <stdint.h>
#include "labs/bias_data.h"

/* Fills buy[]/sell[] of every stock of u (replacing what was there):
 * order qual1, qual2, quant1, quant2.  -1 on OOM. */
int bias_evidence_generate(bias_universe *u, uint64_t seed, char *err, size_t errlen);
/* Writes the study-schema files {dir}/evidence_qual.csv and
 * {dir}/evidence_quant.csv for u (after bias_evidence_generate). */
int bias_evidence_write(const bias_universe *u, const char *qual_path, const char *quant_path,
                        char *err, size_t errlen);
#endif
