/* The version of this build, for --version, logs and the server's answers.
 * Every string is static (borrowed, never freed). */
#ifndef SAFEEVAL_UTIL_VERSION_H
#define SAFEEVAL_UTIL_VERSION_H

/* The project version from CMake's project(VERSION): "0.1.0". */
const char *se_version(void);
/* 16 hex digits: a hash of every source file of the service, the client and
 * the sandbox recipe (cmake/build-id.cmake); the same sources give the same
 * id on any machine, without git or the network. */
const char *se_build_id(void);
/* 16 hex digits: the agent's build id, the one the image tags hash in
 * (`safeeval-agent --version` prints it too). */
const char *se_agent_build_id(void);

#endif
