/* wfctl's main: everything is in wfctl.c so that tests link the same code. */
#include "wf/cli.h"

int main(int argc, char **argv) { return wf_wfctl_main(argc, argv); }
