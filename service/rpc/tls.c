/* TLS server credentials whose certificate, key and client CA can be
 * replaced while serving (SIGHUP).
 *
 * gRPC asks a certificate config fetcher for news at every new handshake
 * (grpc_ssl_server_credentials_create_options_using_config_fetcher). A
 * reload reads and checks the files now and leaves the result as the
 * pending config; the next handshake takes it (RELOAD_NEW) and every later
 * one uses it. Open connections and their calls go on with the old one. A
 * file that cannot be read, is not PEM, or a key that is not the
 * certificate's, leaves the config in use as it is. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "rpc/internal.h"
#include "util/cleanup.h"
#include "util/file.h"
#include "util/log.h"

#define RPC_PEM_MAX (1u << 20)

struct rpc_tls {
    char *cert_path, *key_path, *ca_path; /* ca_path NULL: no client certificates */
    pthread_mutex_t mu;
    grpc_ssl_server_certificate_config *pending; /* under mu; taken by the next handshake */
};

static int
read_pem(const char *path, char **out, se_err *err)
{
    cleanup_free uint8_t *buf = NULL;
    size_t got = 0;
    if (file_read_all(path, RPC_PEM_MAX, 0, &buf, &got, NULL, err) < 0) {
        if (!err)
            return -SE_INVALID;
        err->code = SE_INVALID;
        return se_err_prefix(err, "TLS file");
    }
    if (got == 0 || memchr(buf, '\0', got))
        return se_err_set(err, SE_INVALID, "read %s: empty or not PEM text", path);
    *out = (char *)steal_pointer(&buf);
    return 0;
}

/* gRPC only finds a bad certificate or key at the next handshake (and then
 * keeps the old config with a line in its own log): check them here, so a
 * reload can say why it kept the old files. */
static int
check_pem(const char *cert, const char *key, const char *ca, const rpc_tls *t, se_err *err)
{
    int r = 0;
    BIO *b = BIO_new_mem_buf(cert, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    b = BIO_new_mem_buf(key, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!x)
        r = se_err_set(err, SE_INVALID, "%s: no PEM certificate in it", t->cert_path);
    else if (!k)
        r = se_err_set(err, SE_INVALID, "%s: no PEM private key in it (or it is encrypted)",
                       t->key_path);
    else if (X509_check_private_key(x, k) != 1)
        r = se_err_set(err, SE_INVALID, "%s is not the key of the certificate in %s", t->key_path,
                       t->cert_path);
    X509_free(x);
    EVP_PKEY_free(k);
    if (r == 0 && ca) {
        b = BIO_new_mem_buf(ca, -1);
        X509 *c = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        if (!c)
            r = se_err_set(err, SE_INVALID, "%s: no PEM certificate in it", t->ca_path);
        X509_free(c);
    }
    ERR_clear_error();
    return r;
}

/* Reads the three files into a new certificate config. */
static int
load(rpc_tls *t, grpc_ssl_server_certificate_config **out, se_err *err)
{
    cleanup_free char *cert = NULL;
    cleanup_free char *key = NULL;
    cleanup_free char *ca = NULL;
    int r = read_pem(t->cert_path, &cert, err);
    if (r == 0)
        r = read_pem(t->key_path, &key, err);
    if (r == 0 && t->ca_path)
        r = read_pem(t->ca_path, &ca, err);
    if (r == 0)
        r = check_pem(cert, key, ca, t, err);
    if (r == 0) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
        /* gRPC copies the strings. A config from a fetcher must have root
         * certificates (gRPC 1.51 asserts it) even when no client
         * certificate is asked for: then our own chain stands in, unused. */
        *out = grpc_ssl_server_certificate_config_create(ca ? ca : cert, &pair, 1);
        if (!*out)
            r = se_err_set(err, SE_INVALID, "TLS: gRPC refused the certificate or key");
    }
    /* The key's bytes do not linger in our heap. */
    if (key)
        explicit_bzero(key, strlen(key));
    return r;
}

static grpc_ssl_certificate_config_reload_status
fetch(void *ud, grpc_ssl_server_certificate_config **config)
{
    rpc_tls *t = ud;
    pthread_mutex_lock(&t->mu);
    grpc_ssl_server_certificate_config *p = t->pending;
    t->pending = NULL;
    pthread_mutex_unlock(&t->mu);
    if (!p)
        return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    *config = p;
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

void
rpc_tls_free(rpc_tls *t)
{
    if (!t)
        return;
    if (t->pending)
        grpc_ssl_server_certificate_config_destroy(t->pending);
    pthread_mutex_destroy(&t->mu);
    free(t->cert_path);
    free(t->key_path);
    free(t->ca_path);
    free(t);
}

int
rpc_tls_new(rpc_tls **out, grpc_server_credentials **creds, const rpc_server_opts *o, se_err *err)
{
    rpc_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return se_err_set(err, SE_INTERNAL, "out of memory");
    pthread_mutex_init(&t->mu, NULL);
    t->cert_path = strdup(o->tls_cert);
    t->key_path = strdup(o->tls_key);
    t->ca_path = o->tls_client_ca ? strdup(o->tls_client_ca) : NULL;
    int r = 0;
    if (!t->cert_path || !t->key_path || (o->tls_client_ca && !t->ca_path))
        r = se_err_set(err, SE_INTERNAL, "out of memory");
    if (r == 0)
        r = load(t, &t->pending, err);
    if (r < 0) {
        rpc_tls_free(t);
        return r;
    }
    grpc_ssl_server_credentials_options *opts =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(
            t->ca_path ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                       : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            fetch, t);
    /* Fetches the first config now (takes t->pending). */
    *creds = opts ? grpc_ssl_server_credentials_create_with_options(opts) : NULL;
    if (!*creds) {
        rpc_tls_free(t);
        return se_err_set(err, SE_INVALID, "TLS: gRPC refused the certificate or key");
    }
    *out = t;
    return 0;
}

int
rpc_tls_reload(rpc_tls *t, se_err *err)
{
    grpc_ssl_server_certificate_config *c = NULL;
    int r = load(t, &c, err);
    if (r < 0)
        return r;
    pthread_mutex_lock(&t->mu);
    grpc_ssl_server_certificate_config *old = t->pending;
    t->pending = c;
    pthread_mutex_unlock(&t->mu);
    if (old)
        grpc_ssl_server_certificate_config_destroy(old);
    return 0;
}
