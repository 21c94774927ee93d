/* Checks of a received protobuf message that its unpacked form cannot show.
 *
 * protobuf-c hands string fields over as C strings, so a NUL byte inside
 * one cuts the string short without a trace: code after it does not run, a
 * path "etc/passwd\0x" becomes "etc/passwd". The lengths are only on the
 * wire, so this walks the received bytes once, over the message's
 * descriptors, before they are unpacked. Pure: protobuf-c descriptors only,
 * no allocation, no gRPC. */
#ifndef SAFEEVAL_UTIL_PBCHECK_H
#define SAFEEVAL_UTIL_PBCHECK_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "util/err.h"

/* Messages nested deeper than this below the root are refused: bounds the
 * walk's recursion on a recursive schema (ours nest two deep). */
#define PBCHECK_MAX_DEPTH 32

/* Walks data[0..len), a serialised message of type desc, and refuses with
 * SE_INVALID:
 *
 *  - a string field (TYPE_STRING, at any depth: nested messages and map
 *    entries too) whose bytes contain a NUL, naming the field the way the
 *    request spells it, 0-based indexes counting that field's occurrences
 *    on the wire (= the index in the unpacked message):
 *        "code: contains a NUL byte"
 *        "args[1]: contains a NUL byte"
 *        "files[2].path: contains a NUL byte"
 *        "env[3].key: contains a NUL byte"
 *        "env[3].value: contains a NUL byte (key \"HOME\")"
 *    (the key is added to a map value's message when it is short printable
 *    ASCII);
 *  - bytes it cannot walk, with the rules protobuf-c 1.4 unpacks by (so the
 *    walk never loses its place where protobuf-c would not): a bad field
 *    key, a varint over 10 bytes, a length prefix over 5 bytes, over
 *    INT_MAX or past the end, a truncated fixed value, wire types 3, 4, 6,
 *    7 (groups are not supported by protobuf-c); and, where protobuf-c
 *    would accept them, a field number 0 (in a key of more than one byte)
 *    or above 2^29 - 1, and messages nested deeper than PBCHECK_MAX_DEPTH:
 *        "not a valid safeeval.v1.EvalRequest: a length past the end at
 *         byte 40 (in files[0])"
 *
 * Unknown fields are skipped by their wire type; bytes fields, numbers and
 * packed repeated scalars are not looked into. A field sent with another
 * wire type than its declared one is skipped too (protobuf-c refuses it at
 * unpack). Reads nothing outside data[0..len). One pass, plus a rescan of
 * the enclosing messages only to name a refused field. */
int pbcheck_message(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                    se_err *err);

#endif
