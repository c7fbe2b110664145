/* tests/unit/filter_testlib.h: filters for the C tests, written the way users write them - the
 * Mongo-style dict grammar as JSON text ({"year": {"$gte": 2020}, "lang": "en"}) - turned
 * into the storage filter tree. Test scaffolding only: the clients own the grammar (the
 * Python client's vectord/_filter.py); this parser trusts its input and asserts on anything
 * it does not understand. */
#ifndef VD_FILTER_TESTLIB_H
#define VD_FILTER_TESTLIB_H

#include "storage/vd_storage.h"

typedef struct ft_arena ft_arena; /* owns every node and string of the trees it built */

ft_arena *ft_new(void);
void ft_free(ft_arena *a); /* frees every tree it built */
/* The tree of `json` (asserting it parses); valid until ft_free. */
const vd_filter *ft_parse(ft_arena *a, const char *json);
/* The number of points of `collection` the filter `json` matches (vd_filtered_*), asserting
 * it compiles. */
uint64_t ft_count(vd_store *st, const char *collection, const char *json);

#endif
