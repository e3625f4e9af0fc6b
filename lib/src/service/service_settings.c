/* The keys of a service's config group (service.h, "Settings"): the
 * service loop's own, listed here, and those its code reads, declared with
 * evk_service_settings(). */
#include "internal.h"
#include "service_int.h"

/* Every key the library reads from a service's group; a key missing here is
 * refused in every config file, so a new setting starts here. */
static const evk_setting_t loop_settings[] = {
    {"group_id", EVK_SETTING_STRING},
    {"instance_id", EVK_SETTING_STRING},
    {"static_membership", EVK_SETTING_BOOL},
    {"batch_max", EVK_SETTING_INT},
    {"commit_interval_ms", EVK_SETTING_INT},
    {"retry_max", EVK_SETTING_INT},
    {"retry_backoff_ms", EVK_SETTING_INT},
    {"retry_backoff_max_ms", EVK_SETTING_INT},
    {"event_log_level", EVK_SETTING_STRING},
    {"shutdown_timeout_ms", EVK_SETTING_INT},
    {"dead_letter_max_bytes", EVK_SETTING_INT},
    {"metrics_port", EVK_SETTING_INT},
    {"metrics_port_stride", EVK_SETTING_INT},
    {"metrics_bind", EVK_SETTING_STRING},
    {"metrics_max_connections", EVK_SETTING_INT},
    {"metrics_max_connections_per_ip", EVK_SETTING_INT},
    {"metrics_timeout_s", EVK_SETTING_INT},
    {NULL, 0},
};

evk_err_t svc_settings_check(const evk_service_t *svc, char *errstr, size_t errstr_size) {
    const evk_setting_t *const tables[] = {loop_settings, svc->own_settings};
    return evk__config_check_group(svc->cfg, svc->name, tables, 2, 1, errstr, errstr_size);
}

evk_err_t evk_service_settings(evk_service_t *svc, const evk_setting_t *settings, char *errstr,
                               size_t errstr_size) {
    if (!svc) return evk__fail(EVK_ERR_INVALID_ARG, errstr, errstr_size, "service is NULL");
    svc->own_settings = settings;
    return svc_settings_check(svc, errstr, errstr_size);
}
