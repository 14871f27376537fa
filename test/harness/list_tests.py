#!/usr/bin/env python3
"""Prints the case names a C test program lists with WF_TEST(name), one per
line, for test/meson.build (each case becomes its own meson test)."""
import re
import sys

names = []
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        for m in re.finditer(r"\bWF_TEST\((\w+)\)", f.read()):
            if m.group(1) != "name":  # the macro's own definition
                names.append(m.group(1))
if not names:
    sys.exit("list_tests.py: no WF_TEST(name) in %s" % " ".join(sys.argv[1:]))
print("\n".join(names))
