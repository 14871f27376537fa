/*
 * yaml: libyaml documents -> jansson values, for the config file, the
 * --actions-dir files and `wfctl apply`.  Pure (no libuv).
 *
 * Plain (unquoted) scalars become integers, reals, true/false or null when
 * they look like one (YAML 1.1 core subset: true/false/yes/no/on/off, null/~);
 * quoted scalars are always strings.  Anchors/aliases are rejected.
 */
#ifndef WF_YAML_H
#define WF_YAML_H

#include <jansson.h>
#include <stddef.h>

/* Parses every document in buf.  Returns a JSON array holding one value per
 * document (caller owns it), or NULL with err naming the line and problem. */
json_t *wf_yaml_load_all(const char *buf, size_t len, char *err, size_t errlen);

/* Loads a file: JSON if its first non-space byte is '{' or '[' (an array is
 * taken as a list of documents), YAML otherwise.  Same return as above.
 * (Start-up and wfctl only: it reads the file synchronously.) */
json_t *wf_yaml_load_file(const char *path, char *err, size_t errlen);

#endif
