//! Host memory of Python stages: the C heap, counted where it is called.
//!
//! Python objects larger than 512 bytes, numpy arrays and torch CPU tensors
//! all come from the C library's `malloc` family, called through each
//! shared object's global offset table (GOT). Like memray, stageprof points
//! those GOT entries of every loaded object (and of every object loaded
//! later: `dlopen` is hooked the same way) at functions that call the C
//! library's own and count the block's usable size, allocated or freed, on
//! the calling thread ([`stageprof::foreign::count_alloc`]). The recorder
//! then measures each stage's peak and net as it does for Rust's heap.
//!
//! Not counted: pymalloc's small objects (its arenas come from `mmap`),
//! memory mapped directly with `mmap`, and allocations made by the C
//! library itself or by this module. A block allocated before the hooks
//! were installed counts when it is freed, so net figures stay relative to
//! each stage's start. Linux only (ELF, x86_64 and aarch64).

// This module patches function pointers in other objects' GOTs and calls
// the C allocator directly: it needs `unsafe`. Each block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

use stageprof::foreign::{count_alloc, count_free};

#[cfg(target_arch = "x86_64")]
const R_JUMP_SLOT: u32 = 7;
#[cfg(target_arch = "x86_64")]
const R_GLOB_DAT: u32 = 6;
#[cfg(target_arch = "aarch64")]
const R_JUMP_SLOT: u32 = 1026;
#[cfg(target_arch = "aarch64")]
const R_GLOB_DAT: u32 = 1025;

static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Serializes patching (installation, and every `dlopen` after it).
static PATCHING: Mutex<()> = Mutex::new(());

/// Counts the C heap from now on; a second call does nothing.
pub(crate) fn install() {
    if !INSTALLED.swap(true, Relaxed) {
        patch_all();
        stageprof::foreign::counting_heap();
    }
}

fn usable(p: *mut c_void) -> usize {
    // SAFETY: `p` is a live block of the C allocator (checked non-null by
    // every caller), which is what malloc_usable_size takes.
    unsafe { libc::malloc_usable_size(p) }
}

/// A block just allocated (or null), counted.
fn counted(p: *mut c_void) -> *mut c_void {
    if !p.is_null() {
        count_alloc(usable(p));
    }
    p
}

extern "C" fn hook_malloc(size: usize) -> *mut c_void {
    // SAFETY: forwards the caller's request unchanged.
    counted(unsafe { libc::malloc(size) })
}

extern "C" fn hook_calloc(n: usize, size: usize) -> *mut c_void {
    // SAFETY: forwards the caller's request unchanged.
    counted(unsafe { libc::calloc(n, size) })
}

extern "C" fn hook_realloc(old: *mut c_void, size: usize) -> *mut c_void {
    let before = if old.is_null() { 0 } else { usable(old) };
    // SAFETY: forwards the caller's block and size unchanged; `old` is not
    // touched after the call.
    let p = unsafe { libc::realloc(old, size) };
    if !p.is_null() {
        count_free(before);
        count_alloc(usable(p));
    } else if size == 0 {
        count_free(before);
    }
    p
}

extern "C" fn hook_free(p: *mut c_void) {
    if !p.is_null() {
        count_free(usable(p));
    }
    // SAFETY: forwards the caller's block unchanged.
    unsafe { libc::free(p) }
}

extern "C" fn hook_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // SAFETY: forwards the caller's arguments unchanged; `out` is written by
    // posix_memalign only on success, and read here only then.
    let rc = unsafe { libc::posix_memalign(out, align, size) };
    if rc == 0 {
        // SAFETY: on success posix_memalign stored a valid block in `*out`.
        count_alloc(usable(unsafe { *out }));
    }
    rc
}

extern "C" fn hook_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    // SAFETY: forwards the caller's request unchanged.
    counted(unsafe { libc::aligned_alloc(align, size) })
}

extern "C" fn hook_memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: forwards the caller's request unchanged.
    counted(unsafe { libc::memalign(align, size) })
}

extern "C" fn hook_dlopen(file: *const c_char, mode: c_int) -> *mut c_void {
    // SAFETY: forwards the caller's arguments unchanged.
    let handle = unsafe { libc::dlopen(file, mode) };
    if !handle.is_null() {
        // What it loaded calls malloc through GOTs of its own.
        patch_all();
    }
    handle
}

/// The functions replaced, by symbol name: the C library's (what the hook
/// calls) and the hook.
fn replacement(name: &[u8]) -> Option<(usize, usize)> {
    let f = |original: *const (), hook: *const ()| Some((original as usize, hook as usize));
    match name {
        b"malloc" => f(libc::malloc as *const (), hook_malloc as *const ()),
        b"calloc" => f(libc::calloc as *const (), hook_calloc as *const ()),
        b"realloc" => f(libc::realloc as *const (), hook_realloc as *const ()),
        b"free" => f(libc::free as *const (), hook_free as *const ()),
        b"posix_memalign" => f(libc::posix_memalign as *const (), hook_posix_memalign as *const ()),
        b"aligned_alloc" => f(libc::aligned_alloc as *const (), hook_aligned_alloc as *const ()),
        b"memalign" => f(libc::memalign as *const (), hook_memalign as *const ()),
        b"dlopen" => f(libc::dlopen as *const (), hook_dlopen as *const ()),
        _ => None,
    }
}

/// Objects whose calls are left alone: the C library and the loader (their
/// internal calls are their own business), this module (it calls the real
/// functions), and the GPU driver's and CUDA tools' libraries (their host
/// memory is the driver's, not the pipeline's, and some of them free blocks
/// they did not get from `malloc`).
fn skipped(name: &[u8]) -> bool {
    let file = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    file.starts_with(b"libcuda.so")
        || file.starts_with(b"libnvidia-")
        || file.starts_with(b"libcupti")
        || file.starts_with(b"libnvToolsExt")
        || file.starts_with(b"libnvtx")
        || file.starts_with(b"libc.so")
        || file.starts_with(b"ld-linux")
        || file.starts_with(b"ld64.so")
        || file.starts_with(b"libdl.so")
        || file.starts_with(b"_native.")
        || file.starts_with(b"linux-vdso")
}

fn patch_all() {
    let _one_at_a_time = PATCHING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // SAFETY: dl_iterate_phdr calls `visit` once per loaded object with a
    // valid dl_phdr_info, under the loader's lock; `visit` returns 0 to go on.
    unsafe { libc::dl_iterate_phdr(Some(visit), std::ptr::null_mut()) };
}

unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, _size: usize, _data: *mut c_void) -> c_int {
    // SAFETY: the loader passes a valid info for the duration of the call;
    // its name is a NUL-terminated string (empty for the main program).
    let info = unsafe { &*info };
    let name = if info.dlpi_name.is_null() { &b""[..] } else { unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes() };
    if !skipped(name) {
        if std::env::var_os("STAGEPROF_DEBUG_HOOKS").is_some() {
            eprintln!("stageprof: counting the C heap of {}", String::from_utf8_lossy(name));
        }
        // SAFETY: `info` describes a loaded object whose program headers and
        // dynamic section are mapped (see patch_object).
        unsafe { patch_object(info) };
    }
    0
}

/// An entry of the dynamic section (ELF64).
#[repr(C)]
struct Elf64Dyn {
    d_tag: i64,
    d_un: u64,
}

/// The dynamic section's entries of interest.
#[derive(Default)]
struct Dynamic {
    strtab: usize,
    symtab: usize,
    jmprel: usize,
    jmprel_size: usize,
    rela: usize,
    rela_size: usize,
}

/// Points the object's GOT entries for the allocator's functions at the hooks.
///
/// # Safety
/// `info` must describe an object loaded in this process.
unsafe fn patch_object(info: &libc::dl_phdr_info) {
    let base = info.dlpi_addr as usize;
    // SAFETY: the loader maps the program headers for the object's life.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let Some(dynamic) = headers.iter().find(|h| h.p_type == libc::PT_DYNAMIC) else { return };
    // In-memory dynamic entries hold addresses the loader already relocated
    // on x86_64 and aarch64; an entry below the base is still an offset.
    let at = |v: u64| if (v as usize) < base { base + v as usize } else { v as usize };
    let mut d = Dynamic::default();
    let mut entry = (base + dynamic.p_vaddr as usize) as *const Elf64Dyn;
    loop {
        // SAFETY: the dynamic section is mapped and ends with DT_NULL.
        let e = unsafe { &*entry };
        match e.d_tag as u64 {
            0 => break,
            5 => d.strtab = at(e.d_un),           // DT_STRTAB
            6 => d.symtab = at(e.d_un),           // DT_SYMTAB
            23 => d.jmprel = at(e.d_un),          // DT_JMPREL
            2 => d.jmprel_size = e.d_un as usize, // DT_PLTRELSZ
            7 => d.rela = at(e.d_un),             // DT_RELA
            8 => d.rela_size = e.d_un as usize,   // DT_RELASZ
            _ => {}
        }
        // SAFETY: not past DT_NULL, checked above.
        entry = unsafe { entry.add(1) };
    }
    if d.strtab == 0 || d.symtab == 0 {
        return;
    }
    for (table, size) in [(d.jmprel, d.jmprel_size), (d.rela, d.rela_size)] {
        if table == 0 {
            continue;
        }
        let count = size / std::mem::size_of::<libc::Elf64_Rela>();
        // SAFETY: the loader mapped the relocation table it applied.
        let relocations = unsafe { std::slice::from_raw_parts(table as *const libc::Elf64_Rela, count) };
        for r in relocations {
            let kind = (r.r_info & 0xffff_ffff) as u32;
            if kind != R_JUMP_SLOT && kind != R_GLOB_DAT {
                continue;
            }
            let symbol = (r.r_info >> 32) as usize;
            // SAFETY: a relocation's symbol index lies within the symbol
            // table, whose names lie within the string table.
            let name = unsafe {
                let sym = &*(d.symtab as *const libc::Elf64_Sym).add(symbol);
                CStr::from_ptr((d.strtab + sym.st_name as usize) as *const c_char).to_bytes()
            };
            if let Some((original, hook)) = replacement(name) {
                let slot = base + r.r_offset as usize;
                // SAFETY: r_offset is the GOT slot the loader wrote for this object.
                let now = unsafe { (slot as *const usize).read_volatile() };
                // Only calls bound to the C library's function, or not bound yet (a
                // lazy slot still points into the object's own PLT): an object bound
                // to another allocator (jemalloc, say) keeps it, or its blocks would
                // reach the C library's free.
                let own = headers.iter().any(|h| {
                    h.p_type == libc::PT_LOAD
                        && (base + h.p_vaddr as usize..base + (h.p_vaddr + h.p_memsz) as usize).contains(&now)
                });
                if now != original && !own {
                    continue;
                }
                // The slot's segment says whether its pages also hold code (they keep it executable).
                let executable = headers.iter().any(|h| {
                    h.p_type == libc::PT_LOAD
                        && (base + h.p_vaddr as usize..base + (h.p_vaddr + h.p_memsz) as usize).contains(&slot)
                        && h.p_flags & libc::PF_X != 0
                });
                // SAFETY: r_offset is the GOT slot the loader wrote for this object.
                unsafe { write_slot(slot as *mut usize, hook, executable) };
            }
        }
    }
}

/// Writes `value` into a GOT slot, making its page writable if RELRO made
/// it read-only (and keeping it executable if its segment holds code).
///
/// # Safety
/// `slot` must be a GOT entry of a loaded object (aligned, mapped).
unsafe fn write_slot(slot: *mut usize, value: usize, executable: bool) {
    // SAFETY: the slot is mapped and aligned (the caller's promise).
    if unsafe { slot.read_volatile() } == value {
        return;
    }
    let page = page_size();
    let start = (slot as usize) & !(page - 1);
    // SAFETY: changing the protection of the slot's own page; it stays
    // readable throughout, so other threads calling through it are unaffected.
    let protection = libc::PROT_READ | libc::PROT_WRITE | if executable { libc::PROT_EXEC } else { 0 };
    let writable = unsafe { libc::mprotect(start as *mut c_void, page, protection) } == 0;
    if writable {
        // SAFETY: aligned pointer-sized store: other threads see the old or the new function, both valid.
        unsafe { slot.write_volatile(value) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}
