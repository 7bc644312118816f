//! The one way this crate writes a `Debug` that cannot leak: the type's
//! name and the fields listed as safe to show (counts, flags, states),
//! never keys, aliases, names or message text.

/// `redacted_debug!(Type)` prints `Type { .. }`; `redacted_debug!(Type:
/// a, b)` also prints fields `a` and `b`.
macro_rules! redacted_debug {
    ($t:ty $(: $($field:ident),* )?) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    $($(.field(stringify!($field), &self.$field))*)?
                    .finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use redacted_debug;
