/* Headers that ferrovs binds. Static-inline functions from these get C wrappers generated
 * by bindgen's wrap_static_fns (see build.rs). */
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_dev.h>
#include <rte_bus_vdev.h>
#include <rte_thash.h>
#include <rte_ring.h>
#include <rte_flow.h>
#include <rte_version.h>
#include <rte_telemetry.h>
#include <rte_pdump.h>

/* Macros and thread-locals that bindgen cannot turn into functions: csrc/extra.c. */
int fvs_rte_errno(void);
