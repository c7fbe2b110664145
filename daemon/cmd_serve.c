/* daemon/cmd_serve.c: `vectord serve` - parses the command line into a vd_server_config and
 * runs the server (daemon/server.c). The flags are a vd_cli table (daemon/cli.c): every flag
 * takes its value as the next argument or after '=', the help is printed from the table, and
 * bad arguments exit 2 with one line naming the flag and what was wrong. --max-k is checked
 * against the parameter table's k range (index/vd_index.h); the other limits are the
 * server's own. */
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

static vd_status parse_listen(const char *s, void *dst, vd_err *err)
{
    vd_server_config *cfg = dst;
    const char *colon = strrchr(s, ':'), *h = s;
    size_t hl = colon ? (size_t)(colon - s) : 0;
    unsigned long port = 0;
    char *end = NULL;
    if (colon && h[0] == '[') { /* [v6 address]:port */
        if (hl < 3 || h[hl - 1] != ']') goto bad;
        h++;
        hl -= 2;
    } else if (!colon || memchr(h, ':', hl)) {
        goto bad; /* no port, or IPv6 without brackets */
    }
    if (hl == 0 || hl >= sizeof cfg->host || !isdigit((unsigned char)colon[1])) goto bad;
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno || *end || port > 65535) goto bad;
    memcpy(cfg->host, h, hl);
    cfg->host[hl] = 0;
    if (!strcmp(cfg->host, "localhost")) snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
    cfg->port = (int)port;
    return VD_OK;
bad:
    return vd_err_set(err, VD_INVALID, "expected HOST:PORT, e.g. 127.0.0.1:7711");
}

static vd_status parse_token_file(const char *s, void *dst, vd_err *err)
{
    if (access(s, R_OK) != 0) return vd_err_set(err, VD_INVALID, "%s", strerror(errno));
    *(const char **)dst = s;
    return VD_OK;
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
         .help = "require the token in FILE (first line) in every hello",
         .parse = parse_token_file},
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
    };
    const vd_cli cli = {.cmd = "serve",
                        .synopsis = "[options]",
                        .about = "Serves a data directory over TCP (protocol: docs/protocol.md).\n",
                        .flags = flags,
                        .n_flags = VD_ARRAY_LEN(flags)};
    int rc = vd_cli__parse(&cli, argc, argv);
    if (rc >= 0) return rc;
    /* Responses queue up to this many bytes per connection before reading from it pauses:
     * room for a couple of maximal responses, so one big answer never deadlocks. */
    cfg.max_output_bytes =
        cfg.limits.max_frame_bytes < 16 * MIB ? 16 * MIB : cfg.limits.max_frame_bytes;
    return vd_server_run(&cfg);
}
