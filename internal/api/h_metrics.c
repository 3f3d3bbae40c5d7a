/* GET /metrics: the Prometheus text exposition of the producer's metrics (no auth,
 * like /healthz; bind http_addr to a private interface or filter it upstream). */
#include "api/api_int.h"

#include "metrics/metrics.h"

void api_h_metrics(struct api_request *req)
{
    char *text = NULL;
    size_t len = 0;
    if (metrics_expose(req->api->deps.metrics, &text, &len) < 0) {
        api_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "Internal Server Error",
                    "the metrics could not be rendered");
        return;
    }
    api_respond_text(req, MHD_HTTP_OK, text, METRICS_CONTENT_TYPE);
}
