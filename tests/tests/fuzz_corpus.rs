//! Every input of the committed fuzz corpora (`fuzz/corpus/TARGET/`), seeds and the
//! cases that once crashed a target alike, through the same checks the fuzz targets
//! make: on the stable toolchain, in every test run.

use jiancha_scenarios::repo_root;

#[test]
fn every_corpus_input_passes_its_targets_checks() {
    let mut total = 0;
    for (target, check) in jiancha_fuzz_checks::TARGETS {
        let dir = repo_root().join("fuzz/corpus").join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} fails its check", path.display());
            n += 1;
        }
        assert!(n > 0, "{target} has no corpus");
        total += n;
    }
    assert!(total >= 6);
}
