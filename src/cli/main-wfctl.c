/* wfctl's main: everything is in wfctl/ (in the wf library) so that tests
 * link the same code. */
#include "wf/cli.h"

int main(int argc, char **argv) { return wf_wfctl_main(argc, argv); }
