/* daemon/cmd_serve.c: `vectord serve` - parses the command line into a vd_server_config and
 * runs the server (daemon/server.c). The flags are a vd_cli table (daemon/cli.c): every flag
 * takes its value as the next argument or after '=', the help is printed from the table, and
 * bad arguments exit 2 with one line naming the flag and what was wrong. --max-k is checked
 * against the parameter table's k range (index/vd_index.h); the other limits are the
 * server's own. Flags that only make sense together (--tls-cert and --tls-key, a client CA
 * or a read-only token without what they complete) are checked right after parsing, so a
 * bad combination exits 2 before anything is opened. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon_int.h"
#include "daemon/server_int.h"

#define MIB (1024u * 1024u)

/* HOST:PORT (or [v6]:PORT) into host/port; with bare_port, a lone PORT means loopback. */
static vd_status parse_hostport(const char *s, char *host, size_t cap, int *port_out,
                                int bare_port, vd_err *err)
{
    const char *colon = strrchr(s, ':'), *h = s;
    size_t hl = colon ? (size_t)(colon - s) : 0;
    unsigned long port = 0;
    char *end = NULL;
    if (!colon && bare_port && isdigit((unsigned char)s[0])) {
        errno = 0;
        port = strtoul(s, &end, 10);
        if (errno || *end || port > 65535) goto bad;
        snprintf(host, cap, "127.0.0.1");
        *port_out = (int)port;
        return VD_OK;
    }
    if (colon && h[0] == '[') { /* [v6 address]:port */
        if (hl < 3 || h[hl - 1] != ']') goto bad;
        h++;
        hl -= 2;
    } else if (!colon || memchr(h, ':', hl)) {
        goto bad; /* no port, or IPv6 without brackets */
    }
    if (hl == 0 || hl >= cap || !isdigit((unsigned char)colon[1])) goto bad;
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno || *end || port > 65535) goto bad;
    memcpy(host, h, hl);
    host[hl] = 0;
    if (!strcmp(host, "localhost")) snprintf(host, cap, "127.0.0.1");
    *port_out = (int)port;
    return VD_OK;
bad:
    return vd_err_set(err, VD_INVALID, bare_port ? "expected HOST:PORT or PORT, e.g. 9100"
                                                 : "expected HOST:PORT, e.g. 127.0.0.1:7711");
}

static vd_status parse_listen(const char *s, void *dst, vd_err *err)
{
    vd_server_config *cfg = dst;
    return parse_hostport(s, cfg->host, sizeof cfg->host, &cfg->port, 0, err);
}

static vd_status parse_metrics_listen(const char *s, void *dst, vd_err *err)
{
    vd_server_config *cfg = dst;
    return parse_hostport(s, cfg->metrics_host, sizeof cfg->metrics_host, &cfg->metrics_port, 1,
                          err);
}

/* A file that must be readable (tokens, certificates, keys); its contents are checked at
 * start, before the data directory is opened. */
static vd_status parse_file(const char *s, void *dst, vd_err *err)
{
    if (access(s, R_OK) != 0) return vd_err_set(err, VD_INVALID, "%s", strerror(errno));
    *(const char **)dst = s;
    return VD_OK;
}

static vd_status parse_log_format(const char *s, void *dst, vd_err *err)
{
    if (!strcmp(s, "text") || !strcmp(s, "json")) {
        *(vd_log_format *)dst = !strcmp(s, "json") ? VD_LOG_JSON : VD_LOG_TEXT;
        return VD_OK;
    }
    return vd_err_set(err, VD_INVALID, "expected text or json");
}

static vd_status parse_idle_timeout(const char *s, void *dst, vd_err *err)
{
    char *end = NULL;
    errno = 0;
    double sec = strtod(s, &end);
    if (errno || end == s || *end || !(sec >= 0) || sec > UINT32_MAX / 1000.0)
        return vd_err_set(err, VD_INVALID, "expected 0..%u seconds (fractions allowed; 0 = "
                          "never)", UINT32_MAX / 1000);
    *(uint32_t *)dst = (uint32_t)ceil(sec * 1000.0);
    return VD_OK;
}

static const char *const level_names[] = {[VD_LOG_DEBUG] = "debug", [VD_LOG_INFO] = "info",
                                          [VD_LOG_WARN] = "warn", [VD_LOG_ERROR] = "error"};

static vd_status parse_log_level(const char *s, void *dst, vd_err *err)
{
    for (size_t i = 0; i < VD_ARRAY_LEN(level_names); i++)
        if (!strcmp(s, level_names[i])) {
            *(vd_log_level *)dst = (vd_log_level)i;
            return VD_OK;
        }
    return vd_err_set(err, VD_INVALID, "expected debug, info, warn or error");
}

/* The defaults: DESIGN.md's command-line contract and the limits the protocol announces. */
static void defaults(vd_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->data_dir = "./vectord-data";
    snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
    cfg->port = 7711;
    cfg->threads = vd_cli__cores();
    cfg->limits.max_frame_bytes = 64 * MIB;
    cfg->limits.max_batch = 65536;
    cfg->limits.max_k = 10000;
    cfg->limits.max_dim = VD_DIM_MAX;
    cfg->limits.max_connections = 1024;
    cfg->limits.idle_timeout_ms = 300 * 1000;
    cfg->max_inflight = 256;
    cfg->log_level = VD_LOG_INFO;
    cfg->log_format = VD_LOG_TEXT;
    cfg->metrics_port = -1;
    const char *pause = getenv("VD_TEST_LOAD_PAUSE_MS"); /* tests only: a slow load */
    if (pause) cfg->test_load_pause_ms = (uint32_t)strtoul(pause, NULL, 10);
}

/* Flags that need another one. Returns 2 after one line on stderr, -1 when all is well. */
static int check_combinations(const vd_server_config *cfg)
{
    if (cfg->tls_cert && !cfg->tls_key)
        return vd_cli__fail("serve", "--tls-key", NULL, "is required with --tls-cert");
    if (cfg->tls_key && !cfg->tls_cert)
        return vd_cli__fail("serve", "--tls-cert", NULL, "is required with --tls-key");
    if (cfg->tls_client_ca && !cfg->tls_cert)
        return vd_cli__fail("serve", "--tls-client-ca", NULL,
                            "needs --tls-cert and --tls-key (client certificates are a TLS "
                            "feature)");
    if (cfg->read_token_file && !cfg->token_file)
        return vd_cli__fail("serve", "--read-token-file", NULL,
                            "needs --token-file (the token that may write)");
    return -1;
}

int vd_cmd_serve(int argc, char **argv)
{
    vd_server_config cfg;
    defaults(&cfg);
    char listen_def[300], idle_def[32];
    snprintf(listen_def, sizeof listen_def, "%s:%d", cfg.host, cfg.port);
    snprintf(idle_def, sizeof idle_def, "%g", cfg.limits.idle_timeout_ms / 1000.0);
    vd_limits *l = &cfg.limits;
    const vd_cli_flag flags[] = {
        {.name = "--data", .meta = "DIR", .kind = VD_CLI_TEXT, .dst = &cfg.data_dir,
         .help = "data directory, created if missing"},
        {.name = "--listen", .meta = "HOST:PORT", .kind = VD_CLI_FN, .dst = &cfg,
         .help = "address; [::1]:PORT for IPv6", .def = listen_def,
         .parse = parse_listen},
        {.name = "--threads", .meta = "N", .kind = VD_CLI_UINT, .dst = &cfg.threads,
         .help = "reader and index build threads", .def = "cores", .lo = 1,
         .hi = VD_CLI_MAX_THREADS},
        {.name = "--token-file", .meta = "FILE", .kind = VD_CLI_FN, .dst = &cfg.token_file,
         .help = "require the token in FILE (first line) in every\nhello; mode 600 (chmod "
                 "600 FILE)",
         .parse = parse_file},
        {.name = "--read-token-file", .meta = "FILE", .kind = VD_CLI_FN,
         .dst = &cfg.read_token_file,
         .help = "also accept the token in FILE, for reads only\n(writes: PERMISSION_DENIED); "
                 "needs --token-file",
         .parse = parse_file},
        {.name = "--tls-cert", .meta = "FILE", .kind = VD_CLI_FN, .dst = &cfg.tls_cert,
         .help = "serve TLS (1.2+) with this PEM certificate chain", .parse = parse_file},
        {.name = "--tls-key", .meta = "FILE", .kind = VD_CLI_FN, .dst = &cfg.tls_key,
         .help = "the PEM private key of --tls-cert", .parse = parse_file},
        {.name = "--tls-client-ca", .meta = "FILE", .kind = VD_CLI_FN, .dst = &cfg.tls_client_ca,
         .help = "require client certificates signed by these\nPEM CAs (mTLS)",
         .parse = parse_file},
        {.name = "--metrics-listen", .meta = "ADDR", .kind = VD_CLI_FN, .dst = &cfg,
         .help = "HOST:PORT for HTTP /metrics, /healthz, /readyz;\na bare PORT means "
                 "127.0.0.1:PORT",
         .def = "off", .parse = parse_metrics_listen},
        {.name = "--slow-query-ms", .meta = "N", .kind = VD_CLI_UINT, .dst = &cfg.slow_query_ms,
         .help = "log requests slower than N ms", .def = "off", .lo = 1, .hi = 3600000},
        {.name = "--max-frame-bytes", .meta = "N", .kind = VD_CLI_BYTES,
         .dst = &l->max_frame_bytes, .help = "largest frame, both directions", .lo = 1024,
         .hi = 1024u * MIB},
        {.name = "--max-batch", .meta = "N", .kind = VD_CLI_UINT, .dst = &l->max_batch,
         .help = "ids per write or get, queries per search", .lo = 1, .hi = 1u << 24},
        {.name = "--max-k", .meta = "N", .kind = VD_CLI_PARAM, .dst = &l->max_k,
         .help = "largest k of a search", .param = VD_PARAM_K},
        {.name = "--max-connections", .meta = "N", .kind = VD_CLI_UINT,
         .dst = &l->max_connections, .help = "connections at once; more are refused",
         .lo = 1, .hi = 1000000},
        {.name = "--idle-timeout-s", .meta = "S", .kind = VD_CLI_FN, .dst = &l->idle_timeout_ms,
         .help = "close connections silent this long; 0 = never", .def = idle_def,
         .parse = parse_idle_timeout},
        {.name = "--max-inflight", .meta = "N", .kind = VD_CLI_UINT, .dst = &cfg.max_inflight,
         .help = "requests in progress per connection before\nreading from it pauses",
         .lo = 1, .hi = 65536},
        {.name = "--log-level", .meta = "LEVEL", .kind = VD_CLI_FN, .dst = &cfg.log_level,
         .help = "debug, info, warn or error", .def = level_names[VD_LOG_INFO],
         .parse = parse_log_level},
        {.name = "--log-format", .meta = "FORMAT", .kind = VD_CLI_FN, .dst = &cfg.log_format,
         .help = "text, or json (one object per line)", .def = "text",
         .parse = parse_log_format},
    };
    const vd_cli cli = {.cmd = "serve",
                        .synopsis = "[options]",
                        .about = "Serves a data directory over TCP (protocol: docs/protocol.md).\n",
                        .flags = flags,
                        .n_flags = VD_ARRAY_LEN(flags)};
    int rc = vd_cli__parse(&cli, argc, argv);
    if (rc >= 0 || (rc = check_combinations(&cfg)) >= 0) return rc;
    /* Responses queue up to this many bytes per connection before reading from it pauses:
     * room for a couple of maximal responses, so one big answer never deadlocks. */
    cfg.max_output_bytes =
        cfg.limits.max_frame_bytes < 16 * MIB ? 16 * MIB : cfg.limits.max_frame_bytes;
    return vd_server_run(&cfg);
}
