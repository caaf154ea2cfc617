//! Generates bindings to the system DPDK and compiles C wrappers for its static-inline
//! functions (rte_eth_rx_burst, rte_pktmbuf_alloc, ...), which have no symbol to link.

use std::env;
use std::path::PathBuf;

use bindgen::callbacks::{IntKind, ParseCallbacks};

/// DPDK builds many flag constants with RTE_BIT64(); bindgen's macro fallback types them as
/// i32/u32. Map those families to u64 so they can be or-ed into the u64 fields they belong to.
#[derive(Debug)]
struct Bit64Macros;

impl ParseCallbacks for Bit64Macros {
    fn int_macro(&self, name: &str, _value: i64) -> Option<IntKind> {
        const U64_PREFIXES: &[&str] = &["RTE_ETH_RSS_", "RTE_ETH_RX_OFFLOAD_", "RTE_ETH_TX_OFFLOAD_", "RTE_MBUF_F_"];
        U64_PREFIXES.iter().any(|p| name.starts_with(p)).then_some(IntKind::U64)
    }
}

fn main() {
    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .expect("libdpdk not found by pkg-config: install Debian's libdpdk-dev (scripts/setup.sh does)");

    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let header = manifest.join("csrc/wrapper.h");
    let static_wrappers = out.join("static_fns");

    // The exact C flags pkg-config gives (-include rte_config.h, -march=corei7, include
    // paths): rte_memcpy's always_inline SSE intrinsics need the -march.
    let cflags: Vec<String> = pkg_config::get_variable("libdpdk", "cflags")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_else(|| {
            let output = std::process::Command::new("pkg-config")
                .args(["--cflags", "libdpdk"])
                .output()
                .expect("run pkg-config --cflags libdpdk");
            String::from_utf8(output.stdout).unwrap().split_whitespace().map(String::from).collect()
        });

    let bindings = bindgen::Builder::default()
        .header(header.to_str().unwrap())
        .clang_args(&cflags)
        .clang_macro_fallback()
        .parse_callbacks(Box::new(Bit64Macros))
        .wrap_static_fns(true)
        .wrap_static_fns_path(&static_wrappers)
        .allowlist_function("rte_.*")
        .allowlist_function("fvs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("SOCKET_ID_ANY")
        // Packed struct holding an aligned one: does not compile in Rust (E0588). ARP is
        // parsed with the dataplane's own byte views instead.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on DPDK headers");
    bindings.write_to_file(out.join("bindings.rs")).expect("write bindings.rs");

    let mut build = cc::Build::new();
    build
        .file(static_wrappers.with_extension("c"))
        .file(manifest.join("csrc/extra.c"))
        .include(manifest.join("csrc"))
        .warnings(false)
        .opt_level(3);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("dpdk_sys_wrappers");

    println!("cargo:rerun-if-changed=csrc/wrapper.h");
    println!("cargo:rerun-if-changed=csrc/extra.c");
    println!("cargo:rerun-if-changed=build.rs");
    let _ = dpdk;
}
