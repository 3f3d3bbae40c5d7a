/* handler internals shared by http.c (the calls) and routes.c (the route lists). */
#ifndef HANDLER_INT_H
#define HANDLER_INT_H

#include "handler/handler.h"

/* Registers one route (type and url already checked). */
int handler_http__add(struct handler_http *h, struct handler_registry *reg, const char *type,
                      const char *url);

#endif
