/* daemon/cmd_serve.c: `vectord serve` - parses the command line into a vd_server_config and
 * runs the server (daemon/server.c). Every flag takes its value as the next argument or
 * after '='. Bad arguments exit 2 with one line naming the flag and what was wrong. */
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

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vectord serve [options]\n"
            "\n"
            "Serves a data directory over TCP (protocol: docs/protocol.md).\n"
            "\n"
            "  --data DIR              data directory, created if missing [./vectord-data]\n"
            "  --listen HOST:PORT      address to listen on; [::1]:PORT for IPv6 [127.0.0.1:7711]\n"
            "  --threads N             reader threads and index build threads [cores]\n"
            "  --token-file FILE       require the token in FILE (first line) in every hello\n"
            "  --max-frame-bytes N     largest frame, both directions [67108864]\n"
            "  --max-batch N           ids per upsert/delete/get, queries per search [65536]\n"
            "  --max-k N               largest k of a search [10000]\n"
            "  --max-connections N     connections served at once; more are refused [1024]\n"
            "  --idle-timeout-s S      close connections silent for S seconds; 0 = never [300]\n"
            "  --max-inflight N        requests in progress per connection before reading\n"
            "                          from it pauses [256]\n"
            "  --log-level LEVEL       debug, info, warn or error [info]\n"
            "  -h, --help              this text\n");
}

static int bad(const char *flag, const char *val, const char *why)
{
    fprintf(stderr, "vectord serve: %s %s: %s (try vectord serve --help)\n", flag, val, why);
    return 2;
}

/* Parses an unsigned integer in [lo, hi]; suffixes k/M/G (binary) allowed when `sized`. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, int sized, uint64_t *out)
{
    if (!s || !*s || *s == '-') return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    if (sized && *end) {
        unsigned shift = *end == 'k' || *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
        if (!shift || (end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0))
            return -1;
        if (v > (UINT64_MAX >> shift)) return -1;
        v <<= shift;
        end += strlen(end);
    }
    if (*end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_listen(const char *s, vd_server_config *cfg)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -1;
    size_t hl = (size_t)(colon - s);
    const char *h = s;
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']') return -1;
        h++;
        hl -= 2;
    } else if (memchr(h, ':', hl)) {
        return -1; /* IPv6 needs brackets */
    }
    if (hl >= sizeof cfg->host) return -1;
    uint64_t port;
    if (parse_u64(colon + 1, 0, 65535, 0, &port)) return -1;
    memcpy(cfg->host, h, hl);
    cfg->host[hl] = 0;
    if (!strcmp(cfg->host, "localhost")) snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
    cfg->port = (int)port;
    return 0;
}

int vd_cmd_serve(int argc, char **argv)
{
    vd_server_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.data_dir = "./vectord-data";
    snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
    cfg.port = 7711;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cfg.threads = cores > 0 ? (uint32_t)cores : 1;
    cfg.limits.max_frame_bytes = 64 * MIB;
    cfg.limits.max_batch = 65536;
    cfg.limits.max_k = 10000;
    cfg.limits.max_dim = VD_DIM_MAX;
    cfg.limits.max_connections = 1024;
    cfg.limits.idle_timeout_ms = 300 * 1000;
    cfg.max_inflight = 256;
    cfg.log_level = VD_LOG_INFO;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) return bad("argument", a, "unexpected (flags start with --)");
        char flag[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        if (eq) {
            size_t fl = (size_t)(eq - a);
            if (fl >= sizeof flag) return bad("flag", a, "unknown flag");
            memcpy(flag, a, fl);
            flag[fl] = 0;
            val = eq + 1;
        } else {
            snprintf(flag, sizeof flag, "%s", a);
            if (strlen(a) >= sizeof flag) return bad("flag", a, "unknown flag");
            val = i + 1 < argc ? argv[++i] : NULL;
        }
        if (!val) return bad(flag, "", "needs a value");
        uint64_t v = 0;
        if (!strcmp(flag, "--data")) {
            if (!*val) return bad(flag, "''", "needs a directory");
            cfg.data_dir = val;
        } else if (!strcmp(flag, "--listen")) {
            if (parse_listen(val, &cfg))
                return bad(flag, val, "expected HOST:PORT, e.g. 127.0.0.1:7711");
        } else if (!strcmp(flag, "--threads")) {
            if (parse_u64(val, 1, 1024, 0, &v)) return bad(flag, val, "expected 1..1024");
            cfg.threads = (uint32_t)v;
        } else if (!strcmp(flag, "--token-file")) {
            if (access(val, R_OK) != 0) return bad(flag, val, strerror(errno));
            cfg.token_file = val;
        } else if (!strcmp(flag, "--max-frame-bytes")) {
            if (parse_u64(val, 1024, 1024u * MIB, 1, &v))
                return bad(flag, val, "expected 1024..1GiB (suffixes k, M, G allowed)");
            cfg.limits.max_frame_bytes = (uint32_t)v;
        } else if (!strcmp(flag, "--max-batch")) {
            if (parse_u64(val, 1, 1u << 24, 0, &v)) return bad(flag, val, "expected 1..16777216");
            cfg.limits.max_batch = (uint32_t)v;
        } else if (!strcmp(flag, "--max-k")) {
            if (parse_u64(val, 1, 1000000, 0, &v)) return bad(flag, val, "expected 1..1000000");
            cfg.limits.max_k = (uint32_t)v;
        } else if (!strcmp(flag, "--max-connections")) {
            if (parse_u64(val, 1, 1000000, 0, &v)) return bad(flag, val, "expected 1..1000000");
            cfg.limits.max_connections = (uint32_t)v;
        } else if (!strcmp(flag, "--max-inflight")) {
            if (parse_u64(val, 1, 65536, 0, &v)) return bad(flag, val, "expected 1..65536");
            cfg.max_inflight = (uint32_t)v;
        } else if (!strcmp(flag, "--idle-timeout-s")) {
            char *end = NULL;
            errno = 0;
            double s = strtod(val, &end);
            if (errno || end == val || *end || !(s >= 0) || s > 4294967.0)
                return bad(flag, val, "expected 0..4294967 seconds (fractions allowed; 0 = never)");
            cfg.limits.idle_timeout_ms = (uint32_t)ceil(s * 1000.0);
        } else if (!strcmp(flag, "--log-level")) {
            if (!strcmp(val, "debug"))
                cfg.log_level = VD_LOG_DEBUG;
            else if (!strcmp(val, "info"))
                cfg.log_level = VD_LOG_INFO;
            else if (!strcmp(val, "warn"))
                cfg.log_level = VD_LOG_WARN;
            else if (!strcmp(val, "error"))
                cfg.log_level = VD_LOG_ERROR;
            else
                return bad(flag, val, "expected debug, info, warn or error");
        } else {
            return bad("flag", flag, "unknown flag");
        }
    }
    /* Responses queue up to this many bytes per connection before reading from it pauses:
     * room for a couple of maximal responses, so one big answer never deadlocks. */
    cfg.max_output_bytes =
        cfg.limits.max_frame_bytes < 16 * MIB ? 16 * MIB : cfg.limits.max_frame_bytes;
    return vd_server_run(&cfg);
}
