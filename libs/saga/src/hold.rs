//! The participant's half of a saga step that holds something for an order (stock, money): a
//! [`Holding`] is a total and the part of it held for orders whose saga has not yet confirmed or
//! compensated the hold. A step holds; a compensation releases; a confirmation takes the held part
//! out of the total. The arithmetic keeps `0 <= held <= total`, whatever the order of calls.

/// A total and the part of it held. Invariant: `0 <= held <= total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    /// All there is (units on hand, a balance), including what is held.
    pub total: i64,
    /// What is promised to orders not yet confirmed or compensated.
    pub held: i64,
}

/// Why a hold change is impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    /// Not enough that is not already held.
    #[error("only {available} available")]
    Insufficient {
        /// What is left to hold.
        available: i64,
    },
    /// Releasing or taking more than is held (a bug or corrupted data).
    #[error("more than is held")]
    NotHeld,
}

/// The hold arithmetic of a participant's own counters (declared with [`holding!`](crate::holding)),
/// which keep their domain's names (`on_hand`/`reserved`, `balance_cents`/`held_cents`).
pub trait Held: Copy {
    /// The counters as a [`Holding`].
    fn holding(self) -> Holding;
    /// These counters set to `holding`.
    fn with(self, holding: Holding) -> Self;

    /// What may still be held.
    fn available(self) -> i64 {
        let h = self.holding();
        h.total - h.held
    }

    /// Holds `amount` more.
    fn hold(self, amount: i64) -> Result<Self, HoldError> {
        let h = self.holding();
        if amount > self.available() {
            return Err(HoldError::Insufficient {
                available: self.available(),
            });
        }
        Ok(self.with(Holding {
            held: h.held + amount,
            ..h
        }))
    }

    /// Returns a held `amount` to what is available (a compensation).
    fn release(self, amount: i64) -> Result<Self, HoldError> {
        let h = self.holding();
        if amount > h.held {
            return Err(HoldError::NotHeld);
        }
        Ok(self.with(Holding {
            held: h.held - amount,
            ..h
        }))
    }

    /// Takes a held `amount` out of the total (a confirmation: shipped units, captured money).
    fn take(self, amount: i64) -> Result<Self, HoldError> {
        let h = self.holding();
        if amount > h.held {
            return Err(HoldError::NotHeld);
        }
        Ok(self.with(Holding {
            total: h.total - amount,
            held: h.held - amount,
        }))
    }
}

impl Held for Holding {
    fn holding(self) -> Holding {
        self
    }

    fn with(self, holding: Holding) -> Holding {
        holding
    }
}

/// Declares a participant's counters: a `Copy` struct of two `i64` fields named in the domain's
/// words, the first the total and the second its held part, with the [`Held`] arithmetic.
///
/// ```
/// longship_saga::holding! {
///     /// Stock of one product.
///     pub struct Stock {
///         /// Units on hand.
///         total: on_hand,
///         /// Units reserved.
///         held: reserved,
///     }
/// }
/// use longship_saga::hold::Held;
/// let stock = Stock { on_hand: 5, reserved: 0 }.hold(2).unwrap();
/// assert_eq!((stock.on_hand, stock.reserved, stock.available()), (5, 2, 3));
/// ```
#[macro_export]
macro_rules! holding {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(#[$total_meta:meta])*
            total: $total:ident,
            $(#[$held_meta:meta])*
            held: $held:ident $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis struct $name {
            $(#[$total_meta])*
            pub $total: i64,
            $(#[$held_meta])*
            pub $held: i64,
        }

        impl $crate::hold::Held for $name {
            fn holding(self) -> $crate::hold::Holding {
                $crate::hold::Holding {
                    total: self.$total,
                    held: self.$held,
                }
            }

            fn with(self, holding: $crate::hold::Holding) -> $name {
                $name {
                    $total: holding.total,
                    $held: holding.held,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    crate::holding! {
        /// Counters named as a participant names them.
        struct Named {
            /// The total.
            total: on_hand,
            /// Its held part.
            held: reserved,
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Hold(i64),
        Release(i64),
        Take(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0i64..50).prop_map(Op::Hold),
            (0i64..50).prop_map(Op::Release),
            (0i64..50).prop_map(Op::Take),
        ]
    }

    #[test]
    fn a_hold_is_refused_beyond_what_is_available() {
        let h = Holding { total: 10, held: 4 };
        assert_eq!(
            h.hold(6),
            Ok(Holding {
                total: 10,
                held: 10
            })
        );
        assert_eq!(h.hold(7), Err(HoldError::Insufficient { available: 6 }));
        assert_eq!(h.release(5), Err(HoldError::NotHeld));
        assert_eq!(h.take(5), Err(HoldError::NotHeld));
        assert_eq!(h.take(4), Ok(Holding { total: 6, held: 0 }));
        assert_eq!(h.release(4), Ok(Holding { total: 10, held: 0 }));
        let named = Named {
            on_hand: 10,
            reserved: 4,
        };
        assert_eq!(named.available(), 6);
        assert_eq!(
            named.take(4),
            Ok(Named {
                on_hand: 6,
                reserved: 0
            })
        );
        assert_eq!(named.hold(7), Err(HoldError::Insufficient { available: 6 }));
    }

    proptest! {
        #[test]
        fn held_never_leaves_its_bounds_and_only_takes_shrink_the_total(
            total in 0i64..200,
            ops in prop::collection::vec(op(), 0..60),
        ) {
            let mut holding = Holding { total, held: 0 };
            let mut taken = 0;
            for op in ops {
                let next = match op {
                    Op::Hold(a) => holding.hold(a),
                    Op::Release(a) => holding.release(a),
                    Op::Take(a) => holding.take(a).inspect(|_| taken += a),
                };
                if let Ok(next) = next {
                    holding = next;
                }
                prop_assert!(0 <= holding.held && holding.held <= holding.total, "{holding:?}");
                prop_assert_eq!(holding.total + taken, total);
            }
        }
    }
}
