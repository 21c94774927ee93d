/* JSON views of results and sandboxes for `safeeval --json` (cJSON). */
#ifndef SAFEEVAL_CLI_JSON_H
#define SAFEEVAL_CLI_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "safeeval/safeeval.h"

/* 1 if buf[0..len) is well-formed UTF-8 without NUL bytes (so it survives as
 * a JSON string both ways). */
int cli_utf8_valid(const unsigned char *buf, size_t len);
/* Standard base64 with padding; malloc'd, NUL-terminated; NULL on OOM. */
char *cli_base64(const unsigned char *buf, size_t len);

/* {"reason", "exit_code", "signal", "stdout", "stdout_encoding": "utf-8" |
 * "base64", "stderr", "stderr_encoding", "stdout_truncated", ...}. NULL on
 * OOM. */
cJSON *cli_result_json(const safeeval_result *r);
cJSON *cli_sandbox_json(const safeeval_sandbox *sb);
/* {"code": 5, "status": "NOT_FOUND", "message": "..."} */
cJSON *cli_error_json(const safeeval_error *err);
/* GetServerInfo's answer. */
cJSON *cli_server_info_json(const safeeval_server_info *info);

#endif
