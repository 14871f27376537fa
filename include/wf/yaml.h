/*
 * yaml: libyaml documents -> jansson values, for the config file, the
 * --actions-dir files and `wfctl apply`.  Pure (no libuv).
 *
 * Plain (unquoted) scalars become integers, reals, true/false or null when
 * they look like one (YAML 1.1 core subset: true/false/yes/no/on/off, null/~);
 * quoted scalars are always strings.  Anchors/aliases are rejected.
 *
 * Details of the typing (all on plain scalars only):
 *  - null: empty, `~`, `null` (also Null, NULL);
 *  - booleans: true/false/yes/no/on/off in lower, Capitalised or UPPER case;
 *  - integers: [-+]?[0-9]+ without a leading zero (so `007` and `0755` stay
 *    strings and keep their text), and 0x hex; out of int64 range = string;
 *  - reals: decimal with a `.` and/or an exponent (`1.5`, `2e3`); `.inf` and
 *    `.nan` stay strings (JSON has no such numbers);
 *  - an explicit `!!str` (or `!`) tag forces a string.
 * Mapping keys are always strings (their text as written); a key that is not
 * a scalar, a duplicate key, a scalar with a NUL byte in a key, and nesting
 * deeper than WF_YAML_MAX_DEPTH are errors.
 */
#ifndef WF_YAML_H
#define WF_YAML_H

#include <jansson.h>
#include <stddef.h>

struct ProtobufCMessageDescriptor;

/* Collections nested deeper than this are refused (hostile input). */
#define WF_YAML_MAX_DEPTH 64
/* wf_yaml_load_file refuses larger files. */
#define WF_YAML_MAX_FILE (16u * 1024 * 1024)

/* Parses every document in buf.  Returns a JSON array holding one value per
 * document (caller owns it), or NULL with err naming the line and problem
 * ("line 3, column 5: ..."). */
json_t *wf_yaml_load_all(const char *buf, size_t len, char *err, size_t errlen);

/* The same, but JSON if the first non-space byte is '{' or '[' (an array is
 * taken as a list of documents, an object as one document).  What `wfctl
 * apply -f -` uses for standard input. */
json_t *wf_yaml_load_buf(const char *buf, size_t len, char *err, size_t errlen);

/* Loads a file: JSON if its first non-space byte is '{' or '[' (an array is
 * taken as a list of documents), YAML otherwise.  Same return as above; err
 * does not repeat the path (the caller names the file).
 * (Start-up and wfctl only: it reads the file synchronously.) */
json_t *wf_yaml_load_file(const char *path, char *err, size_t errlen);

/*
 * YAML types `version: 1.0` or `PORT: 8080` as numbers, but the schema wants
 * strings there.  This walks `obj` (a JSON object, modified in place) along
 * the message descriptor `desc` and turns integers, reals and booleans found
 * where the schema has a string (a string field, a map<string,string> value,
 * a repeated string) into their text.  Anything else is left for the codec
 * to judge.  Reals come out in their shortest round-trip form, so `1.10`
 * becomes "1.1": quote such values in YAML.
 */
void wf_yaml_coerce_strings(json_t *obj, const struct ProtobufCMessageDescriptor *desc);

#endif
