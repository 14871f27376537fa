#!/usr/bin/env python3
"""Runs one libFuzzer target on a temporary copy of its seed corpus.

usage: run_fuzz.py TARGET CORPUS_DIR [libFuzzer args...]

libFuzzer adds every new interesting input to the first corpus directory it
is given; the copy keeps the repository's corpus/ unchanged.  A crash
reproducer (crash-*, leak-*, timeout-*) is written to the current directory
(meson test's build dir) and the exit code is the target's.
"""
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    target, corpus, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    with tempfile.TemporaryDirectory(prefix='wf-fuzz-') as tmp:
        work = os.path.join(tmp, 'corpus')
        if os.path.isdir(corpus):
            shutil.copytree(corpus, work)
        else:
            os.mkdir(work)
        # libFuzzer exits 77 on a crash by default, which meson reads as
        # "skipped": a finding would pass CI as a skip.  Any finding is 1.
        cmd = [target, '-error_exitcode=1', '-timeout_exitcode=1'] + args + [work]
        print(' '.join(cmd), flush=True)
        return subprocess.call(cmd)


if __name__ == '__main__':
    sys.exit(main())
