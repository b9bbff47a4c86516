//! Strategies for the property tests (`tests/properties.rs`): hostile path
//! components, and timings around each timeout of the reconciler.
//!
//! - [`corpus`]: names from `fixtures/hostile-names.txt`;
//! - [`names`]: generated names mixing pattern and shell characters,
//!   spaces, non-ASCII, leading dashes and trailing dots; instance names
//!   padded up to the Unix socket path limit; names that cannot be used;
//! - [`timings`]: graceful-exit delays, `wsl.exe` hangs and failure
//!   sequences, `ssh-keygen` delays, the number of racing services.
//!
//! Every name a strategy yields is a valid file name on the running OS.

pub mod corpus;
pub mod names;
pub mod timings;

pub use corpus::{corpus, is_file_name_here};
pub use names::{
    HostileDir, InstanceName, UnusableName, generated_component, instance_name, path_component,
    unusable_name,
};
pub use timings::{
    DeletionEnd, FailedUnregister, HostagentExit, ThenUnregister, UnregisterScript, WslCall,
    hostagent_exit, keygen_delay_ms, racing_services, unregister_script, wsl_call,
};
