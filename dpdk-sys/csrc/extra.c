/* What bindgen cannot reach: rte_errno is a per-lcore thread-local behind a macro. */
#include <rte_errno.h>

int fvs_rte_errno(void)
{
	return rte_errno;
}
