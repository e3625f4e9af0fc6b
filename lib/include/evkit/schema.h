/**
 * @file schema.h
 * @brief The schema catalog: event type -> topic, Avro schema, schema id.
 *
 * schemas/catalog.cfg (libconfig) lists every event type:
 * @code
 * events = (
 *   { type = "shop.orders.OrderPlaced"; topic = "orders";
 *     schema = "OrderPlaced.avsc"; id = 1; key = "order_id"; }
 * );
 * @endcode
 * Schema paths are relative to the catalog's directory. An entry may list
 * older versions of its type still found in topics, read through Avro schema
 * resolution (fields they lack take the current schema's defaults); each must
 * be compatible, or loading fails naming the field:
 * @code
 *     writers = ( { id = 14; schema = "v1/OrderPlaced.avsc"; } );
 * @endcode
 * A catalog may be shared by any number of threads: its entries are
 * immutable after loading (evk_catalog_use_registry() aside, which is called
 * before sharing), and the cache of versions met in a registry is locked.
 */
#ifndef EVKIT_SCHEMA_H
#define EVKIT_SCHEMA_H

#include <stddef.h>
#include <stdint.h>
#include <avro.h>
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evk_catalog_s evk_catalog_t;
/** One catalog entry. Owned by its catalog, valid until evk_catalog_destroy(). */
typedef struct evk_schema_s evk_schema_t;

/**
 * @brief Load <dir>/catalog.cfg and every schema it names.
 * @returns EVK_OK and *out; EVK_ERR_IO, EVK_ERR_CONFIG
 *          ("catalog.cfg:12: events[3].topic: missing") or EVK_ERR_SCHEMA
 *          ("OrderPlaced.avsc: <avro-c's reason>"), with errstr set.
 */
EVK_EXPORT evk_err_t evk_catalog_load(const char *dir, evk_catalog_t **out, char *errstr,
                                      size_t errstr_size);

/** @brief Free @p cat and all its entries. NULL is allowed. */
EVK_EXPORT void evk_catalog_destroy(evk_catalog_t *cat);

/** @brief Number of entries. */
EVK_EXPORT size_t evk_catalog_count(const evk_catalog_t *cat);

/** @brief Entry @p i (0 <= i < count), in catalog order. */
EVK_EXPORT const evk_schema_t *evk_catalog_at(const evk_catalog_t *cat, size_t i);

/**
 * @brief Entry for @p type: full name ("shop.orders.OrderPlaced") or the
 *        short name after the last dot ("OrderPlaced"). NULL if unknown.
 */
EVK_EXPORT const evk_schema_t *evk_catalog_find(const evk_catalog_t *cat, const char *type);

/** @brief Entry whose schema id is @p id, or NULL. */
EVK_EXPORT const evk_schema_t *evk_catalog_by_id(const evk_catalog_t *cat, int32_t id);

/** @brief Full CloudEvents type, e.g. "shop.orders.OrderPlaced". */
EVK_EXPORT const char *evk_schema_type(const evk_schema_t *s);
/** @brief Short type name, e.g. "OrderPlaced". */
EVK_EXPORT const char *evk_schema_name(const evk_schema_t *s);
/** @brief Topic the type is published to. */
EVK_EXPORT const char *evk_schema_topic(const evk_schema_t *s);
/** @brief Field whose value is the Kafka key (catalog "key"), or NULL. */
EVK_EXPORT const char *evk_schema_key_field(const evk_schema_t *s);
/**
 * @brief 1 when the catalog marks the type as a state store's record
 *        (`changelog = true`): its topic is a changelog, which evk-admin
 *        creates with cleanup.policy=compact. 0 otherwise.
 */
EVK_EXPORT int evk_schema_changelog(const evk_schema_t *s);
/** @brief Schema id written in the Confluent frame. */
EVK_EXPORT int32_t evk_schema_id(const evk_schema_t *s);
/** @brief The parsed Avro schema (a record). Owned by the catalog. */
EVK_EXPORT avro_schema_t evk_schema_avro(const evk_schema_t *s);
/** @brief Canonical JSON text of the schema (what a registry stores). */
EVK_EXPORT const char *evk_schema_json(const evk_schema_t *s);

#ifdef __cplusplus
}
#endif
#endif
