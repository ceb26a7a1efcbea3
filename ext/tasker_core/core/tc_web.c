/*
 * tc_web.c - the worker's optional HTTP server on libmicrohttpd: the observability services
 * (tc_observe.c) over GET routes, answered from the server's own bounded pool of threads, so
 * /health answers while the host language is busy, and while one client holds many connections
 * (a per-client limit and an idle timeout). Bodies are the services' text, unchanged.
 *
 * Routes: GET /health, /health/ready (503 when not ready), /health/live, /health/detailed,
 * /metrics (Prometheus text), /metrics/worker, /metrics/events, /templates, /templates/cache/stats,
 * /templates/{ns}/{name}/{version}, /templates/{ns}/{name}/{version}/validate, /config. With an
 * API key configured also DELETE /templates/cache and POST /templates/{ns}/{name}/{version}/refresh.
 * Other methods on these paths: 405 with Allow; other paths: 404. Errors are JSON
 * {error, message, timestamp, request_id}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "tc_internal.h"

struct tc_web {
  struct MHD_Daemon *daemon;
  tc_obs_t *obs;
  tc_runtime_t *rt;
  char bind_address[128];
  int port;
  char *api_key;         /* NULL: no authentication */
  char api_key_header[64];
};

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned int status, const char *type, const char *body,
                                 const char *allow) {
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", type);
  MHD_add_response_header(r, "Cache-Control", "no-store");
  if (allow) MHD_add_response_header(r, "Allow", allow);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned int status, const char *error,
                                  const char *message, const char *allow) {
  char id[37], ts[40];
  tc_uuid_v7(id);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm;
  gmtime_r(&now.tv_sec, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  json_object *j = json_object_new_object();
  if (!j) return MHD_NO;
  json_object_object_add(j, "error", json_object_new_string(error));
  json_object_object_add(j, "message", json_object_new_string(message));
  json_object_object_add(j, "timestamp", json_object_new_string(ts));
  json_object_object_add(j, "request_id", json_object_new_string(id));
  enum MHD_Result ret =
      send_text(c, status, "application/json",
                json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), allow);
  json_object_put(j);
  return ret;
}

/* Runs a service and answers with its text, or with the error mapped to an HTTP status. */
static enum MHD_Result answer(tc_web_t *web, struct MHD_Connection *c, const char *service, json_object *args) {
  char *text = NULL;
  tc_error_t err = {0};
  int rc = tc_obs_call(web->obs, service, args, &text, &err);
  json_object_put(args);
  if (rc != TC_OK) {
    unsigned int status = rc == TC_ENOTFOUND ? 404 : rc == TC_EINVAL ? 400 : rc == TC_EDB ? 503 : 500;
    const char *name = rc == TC_ENOTFOUND ? "not_found" : rc == TC_EINVAL ? "bad_request"
                       : rc == TC_EDB ? "service_unavailable" : "internal_error";
    return send_error(c, status, name, err.message, NULL);
  }
  unsigned int status = 200;
  const char *type = "application/json";
  if (strcmp(service, "metrics_prometheus") == 0) type = "text/plain; version=0.0.4; charset=utf-8";
  if (strcmp(service, "health_ready") == 0 && strstr(text, "\"status\":\"ready\"") == NULL) status = 503;
  enum MHD_Result ret = send_text(c, status, type, text, NULL);
  tc_obs_text_free(text);
  return ret;
}

/* Splits path (after the leading slash) into at most 6 segments, pointers into buf (a copy of the
 * path the caller frees); returns the count, -1 if more, -2 when out of memory. No fixed segment
 * size: a template name may be as long as the template validator allows. */
static int split(const char *path, char **buf, const char *seg[6]) {
  const char *p = path;
  if (*p == '/') p++;
  *buf = tc_strdup(p);
  if (!*buf) return -2;
  int n = 0;
  char *q = *buf;
  while (*q) {
    char *slash = strchr(q, '/');
    if (n == 6) return -1;
    seg[n++] = q;
    if (!slash) break;
    *slash = '\0';
    q = slash + 1;
    /* a trailing slash names the same resource */
  }
  for (int i = n; i < 6; i++) seg[i] = "";
  return n;
}

static json_object *template_args(const char *seg[6]) {
  json_object *a = json_object_new_object();
  if (!a) return NULL;
  json_object_object_add(a, "namespace", json_object_new_string(seg[1]));
  json_object_object_add(a, "name", json_object_new_string(seg[2]));
  json_object_object_add(a, "version", json_object_new_string(seg[3]));
  return a;
}

static bool authorized(tc_web_t *web, struct MHD_Connection *c) {
  if (!web->api_key) return true;
  const char *given = MHD_lookup_connection_value(c, MHD_HEADER_KIND, web->api_key_header);
  if (!given) return false;
  size_t a = strlen(given), b = strlen(web->api_key);
  unsigned char diff = (unsigned char)(a != b);
  for (size_t i = 0; i < b; i++) diff |= (unsigned char)(web->api_key[i] ^ (i < a ? given[i] : 0));
  return diff == 0;
}

static enum MHD_Result route(tc_web_t *web, struct MHD_Connection *c, const char *url, const char *method,
                             bool is_get, const char *seg[6], int n);

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_size, void **state) {
  tc_web_t *web = cls;
  TC_UNUSED(version);
  TC_UNUSED(upload_data);
  /* The first call only announces the request; a body (none expected) arrives in later calls. */
  if (*state == NULL) {
    *state = (void *)1;
    return MHD_YES;
  }
  if (*upload_size) {
    *upload_size = 0;
    return MHD_YES;
  }
  bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  const char *seg[6] = {"", "", "", "", "", ""};
  char *path = NULL;
  int n = split(url, &path, seg);
  if (n == -2) return send_error(c, 500, "internal_error", "out of memory", NULL);
  enum MHD_Result ret = route(web, c, url, method, is_get, seg, n);
  tc_free(path);
  return ret;
}

/* Answers the request for url, split into n segments. */
static enum MHD_Result route(tc_web_t *web, struct MHD_Connection *c, const char *url, const char *method,
                             bool is_get, const char *seg[6], int n) {
  const char *service = NULL;
  const char *allow = "GET, HEAD";
  const char *mutation = NULL; /* the method a cache mutation takes, when it is this route */
  json_object *args = NULL;
  if (n == 1 && strcmp(seg[0], "health") == 0) service = "health_basic";
  else if (n == 2 && strcmp(seg[0], "health") == 0 && strcmp(seg[1], "ready") == 0) service = "health_ready";
  else if (n == 2 && strcmp(seg[0], "health") == 0 && strcmp(seg[1], "live") == 0) service = "health_live";
  else if (n == 2 && strcmp(seg[0], "health") == 0 && strcmp(seg[1], "detailed") == 0) service = "health_detailed";
  else if (n == 1 && strcmp(seg[0], "metrics") == 0) service = "metrics_prometheus";
  else if (n == 2 && strcmp(seg[0], "metrics") == 0 && strcmp(seg[1], "worker") == 0) service = "metrics_worker";
  else if (n == 2 && strcmp(seg[0], "metrics") == 0 && strcmp(seg[1], "events") == 0) service = "metrics_events";
  else if (n == 1 && strcmp(seg[0], "config") == 0) service = "config_runtime";
  else if (n == 1 && strcmp(seg[0], "templates") == 0) service = "templates_list";
  else if (n == 3 && strcmp(seg[0], "templates") == 0 && strcmp(seg[1], "cache") == 0 && strcmp(seg[2], "stats") == 0)
    service = "templates_cache_stats";
  else if (n == 2 && strcmp(seg[0], "templates") == 0 && strcmp(seg[1], "cache") == 0 && web->api_key) {
    service = "templates_cache_clear";
    mutation = "DELETE";
  } else if (n == 4 && strcmp(seg[0], "templates") == 0) service = "template_get";
  else if (n == 5 && strcmp(seg[0], "templates") == 0 && strcmp(seg[4], "validate") == 0) service = "template_validate";
  else if (n == 5 && strcmp(seg[0], "templates") == 0 && strcmp(seg[4], "refresh") == 0 && web->api_key) {
    service = "template_refresh";
    mutation = "POST";
  }
  if (!service) {
    char msg[300];
    snprintf(msg, sizeof msg, "no route for %.200s", url);
    return send_error(c, 404, "not_found", msg, NULL);
  }
  if (mutation ? strcmp(method, mutation) != 0 : !is_get) {
    char msg[300];
    snprintf(msg, sizeof msg, "%.20s is not allowed on %.200s", method, url);
    return send_error(c, 405, "method_not_allowed", msg, mutation ? mutation : allow);
  }
  if (!authorized(web, c)) {
    char msg[200];
    snprintf(msg, sizeof msg, "missing or wrong %s header", web->api_key_header);
    return send_error(c, 401, "unauthorized", msg, NULL);
  }
  if (n >= 4) {
    args = template_args(seg);
  } else if (strcmp(service, "templates_list") == 0) {
    args = json_object_new_object();
    const char *ns = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "namespace");
    const char *incl = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "include_cache_stats");
    if (args && ns && *ns) json_object_object_add(args, "namespace", json_object_new_string(ns));
    if (args) json_object_object_add(args, "include_cache_stats",
                                     json_object_new_boolean(incl && (strcmp(incl, "true") == 0 || strcmp(incl, "1") == 0)));
  }
  return answer(web, c, service, args);
}

/* Parses "host:port" (IPv4; port 0 picks a free one). */
static int parse_bind(const char *s, struct sockaddr_in *sa, tc_error_t *err) {
  const char *colon = s ? strrchr(s, ':') : NULL;
  char host[64];
  if (!colon || (size_t)(colon - s) >= sizeof host)
    return tc_error_set(err, TC_ECONFIG, "web.bind_address must be host:port (got %s)", s ? s : "nothing");
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  char *end = NULL;
  long port = strtol(colon + 1, &end, 10);
  if (!*(colon + 1) || *end || port < 0 || port > 65535)
    return tc_error_set(err, TC_ECONFIG, "web.bind_address port must be 0..65535 (got %s)", s);
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)port);
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
  if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
    return tc_error_set(err, TC_ECONFIG, "web.bind_address host must be an IPv4 address (got %s)", s);
  return TC_OK;
}

int tc_web_start(tc_runtime_t *rt, tc_obs_t *obs, json_object *options, tc_web_t **out, tc_error_t *err) {
  if (options && !json_object_is_type(options, json_type_object))
    return tc_error_set(err, TC_ECONFIG, "web options must be an object");
  json_object *bind = tc_json_get(options, "bind_address"), *key = tc_json_get(options, "api_key");
  json_object *hdr = tc_json_get(options, "api_key_header");
  const char *bind_s = bind ? json_object_get_string(bind) : "127.0.0.1:8081";
  if (bind && !json_object_is_type(bind, json_type_string))
    return tc_error_set(err, TC_ECONFIG, "web.bind_address must be a string");
  if (key && !json_object_is_type(key, json_type_null) &&
      (!json_object_is_type(key, json_type_string) || json_object_get_string_len(key) == 0))
    return tc_error_set(err, TC_ECONFIG, "web.api_key must be a non-empty string");
  if (hdr && (!json_object_is_type(hdr, json_type_string) || json_object_get_string_len(hdr) == 0 ||
              json_object_get_string_len(hdr) >= 64))
    return tc_error_set(err, TC_ECONFIG, "web.api_key_header must be a header name");
  /* A bounded pool of threads serves every connection (an idle one costs no thread), one client
   * holds at most max_connections_per_client of them, and a connection idle (or stuck inside a
   * request) for connection_timeout_seconds is closed: one client cannot starve the others, probes
   * included. */
  int threads = 4, max_connections = 256, per_client = 16, idle_timeout = 10;
  const tc_int_opt_t ints[] = {{"threads", 1, 64, &threads},
                               {"max_connections", 8, 10000, &max_connections},
                               {"max_connections_per_client", 1, 10000, &per_client},
                               {"connection_timeout_seconds", 1, 3600, &idle_timeout}};
  int rc = tc_json_opt_ints(options, ints, TC_COUNT(ints), TC_ECONFIG, "web option ", err);
  if (rc != TC_OK) return rc;
  if (per_client > max_connections)
    return tc_error_set(err, TC_ECONFIG, "web option max_connections_per_client (%d) exceeds max_connections (%d)",
                        per_client, max_connections);
  struct sockaddr_in sa;
  rc = parse_bind(bind_s, &sa, err);
  if (rc != TC_OK) return rc;
  tc_web_t *web = tc_calloc(1, sizeof *web);
  if (!web) return tc_error_set(err, TC_ENOMEM, "out of memory starting the web server");
  web->obs = obs;
  web->rt = rt;
  snprintf(web->api_key_header, sizeof web->api_key_header, "%s", hdr ? json_object_get_string(hdr) : "X-API-Key");
  if (key && json_object_is_type(key, json_type_string)) {
    web->api_key = tc_strdup(json_object_get_string(key));
    if (!web->api_key) {
      tc_free(web);
      return tc_error_set(err, TC_ENOMEM, "out of memory starting the web server");
    }
  }
  web->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, handle, web,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
                                 (unsigned int)threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)max_connections,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)per_client,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)idle_timeout, MHD_OPTION_END);
  if (!web->daemon) {
    tc_free(web->api_key);
    tc_free(web);
    return tc_error_set(err, TC_ECONFIG, "the web server could not listen on %s (address in use or not local?)",
                        bind_s);
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(web->daemon, MHD_DAEMON_INFO_BIND_PORT);
  web->port = info ? (int)info->port : ntohs(sa.sin_port);
  char ip[INET_ADDRSTRLEN] = "";
  inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
  snprintf(web->bind_address, sizeof web->bind_address, "%s:%d", ip, web->port);
  tc_log(rt, TC_LOG_INFO, "web_server_started", "worker web server listening on %s%s", web->bind_address,
         web->api_key ? " (API key required)" : "");
  *out = web;
  return TC_OK;
}

int tc_web_port(tc_web_t *web) { return web ? web->port : 0; }
const char *tc_web_bind_address(tc_web_t *web) { return web ? web->bind_address : ""; }

void tc_web_stop(tc_web_t *web) {
  if (!web) return;
  MHD_stop_daemon(web->daemon);
  tc_free(web->api_key);
  tc_free(web);
}
