/* daemon/main.c: placeholder until the daemon lands (issue 4). */
#include <stdio.h>
int main(void)
{
    fprintf(stderr, "vectord: not yet - the daemon lands with issue 4\n");
    return 1;
}
