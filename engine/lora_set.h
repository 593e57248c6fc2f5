/* lora_set: the adapters an engine serves (vLLM's --lora-modules name=path
 * ...), each opened and checked against the base model at start-up, and the
 * limits of its GPU slots (--max-loras, --max-lora-rank).  A request names
 * adapter 1..n by its place here, 0 being the base model.  No GPU. */
#ifndef ENGINE_LORA_SET_H
#define ENGINE_LORA_SET_H
#include <stdint.h>
#include "engine/lora.h"

typedef struct lora_set {
    int max_loras;                /* GPU slots (--max-loras): adapters running at once */
    int max_rank;                 /* rank of every slot (--max-lora-rank) */
    int n;                        /* adapters; a request names adapter 1..n, 0 = the base model */
    lora_adapter *a;              /* (n,) */
} lora_set;

/* An empty set; -1 when max_loras < 1 or max_rank is not in 1..LORA_MAX_RANK. */
int  lora_set_init(lora_set *s, int max_loras, int max_rank, char *err, size_t errlen);
/* Opens and checks the adapter in dir as adapter s->n + 1 under name (a name
 * used twice is an error).  Returns its id, or -1 with a message. */
int  lora_set_add(lora_set *s, const char *name, const char *dir, const mc_config *c, char *err, size_t errlen);
/* A random all-linear adapter of rank max_rank (benchmarks); its id or -1. */
int  lora_set_add_dummy(lora_set *s, const char *name, const mc_config *c, uint64_t seed, char *err, size_t errlen);
/* The id of adapter name (1..n), or 0 when there is none. */
int  lora_set_find(const lora_set *s, const char *name);
void lora_set_free(lora_set *s);
#endif
