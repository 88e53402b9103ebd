//! Bad input gets a clear error: thousands of mutated manifests — fields deleted, retyped,
//! emptied, out of range — go to the real API server (dry run). Each is either accepted or
//! rejected with a validation error that names the field; none gets a server error.
//!
//! CI runs 1,000 cases; `DATUM_FUZZ_CASES=10000 cargo test -p datum-api --test
//! fuzz_manifests -- --nocapture` runs the full-size campaign and prints the tally. The
//! generator is in `fuzz/`; `providers/sim/tests/fuzz_reconcile.rs` creates its accepted
//! manifests for real and has the controllers and the sim provider reconcile them.

mod common;
mod fuzz;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

#[test]
fn mutated_manifests_are_accepted_or_rejected_with_a_field_named_error() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let env = runtime.block_on(common::env_named("fuzz"));
    let samples = std::fs::read_dir(common::upstream("samples"))
        .expect("samples")
        .flat_map(|entry| {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("sample");
            common::documents(&text)
        })
        .map(|obj| serde_json::to_value(&obj).expect("serializable"));
    let seeds = fuzz::seeds(&env.namespace, samples);
    assert!(seeds.len() >= 8, "every kind has a seed");

    let cases = fuzz::cases(1000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let tally = std::sync::Mutex::new((0u32, 0u32));
    let result = runner.run(&fuzz::case(seeds.len()), |case| {
        let obj = fuzz::apply(&seeds, &case);
        match runtime.block_on(env.create_dry_run(&obj)) {
            Ok(_) => tally.lock().expect("not poisoned").0 += 1,
            Err(kube::Error::Api(status)) => {
                tally.lock().expect("not poisoned").1 += 1;
                prop_assert!(
                    status.code == 422 || status.code == 400,
                    "{} {} for {obj}",
                    status.code,
                    status.message
                );
                prop_assert!(
                    fuzz::names_a_field(&status.message),
                    "no field named in {:?} for {obj}",
                    status.message
                );
            }
            Err(other) => return Err(TestCaseError::fail(format!("{other} for {obj}"))),
        }
        Ok(())
    });
    let (accepted, rejected) = *tally.lock().expect("not poisoned");
    println!(
        "fuzz: {cases} manifests, {accepted} accepted, {rejected} rejected with a field-named error"
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert!(
        rejected > cases / 10,
        "the mutations produce invalid manifests ({rejected} rejected)"
    );
    assert!(
        accepted > 0,
        "some mutations stay valid ({accepted} accepted)"
    );
}
