fn main() {
    // cargo-fuzz builds with `--cfg fuzzing`; checksums are skipped then.
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
}
