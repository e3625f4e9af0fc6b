/**
 * @file evkit.h
 * @brief Umbrella header: include this to use all of libevkit.
 */
#ifndef EVKIT_EVKIT_H
#define EVKIT_EVKIT_H

#include "evkit/version.h"
#include "error.h"
#include "config.h"
#include "schema.h"
#include "registry.h"
#include "event.h"
#include "producer.h"
#include "service.h"
#include "devbroker.h"
#include "cli.h"
#include "log.h"

#endif
