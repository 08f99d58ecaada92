//! The rows of a set-based statement bound column by column: one array parameter per column,
//! read back as rows by `unnest` ([`Binds::unnest`]).

use sqlx::postgres::Postgres;
use sqlx::{Encode, Type, TypeInfo};

use crate::Binds;

/// The columns of some rows, one array each, in the order the statement names them: a tuple of
/// `Vec`s of one length, such as `(tenants, order_ids, amounts)`.
pub trait Columns<'q> {
    /// Binds every column as the next parameter and answers its placeholder cast to the column's
    /// array type (`$3::int8[]`), in order.
    fn push(self, binds: &mut Binds) -> Vec<String>;
}

impl Binds {
    /// Binds each of `columns` as the next parameter and answers `unnest($a::text[], $b::uuid[],
    /// ...)`, the rows they make (to name as `unnest(...) AS u(tenant_id, order_id, ...)`). Whatever
    /// the number of rows, the statement text stays the same.
    pub fn unnest<'q>(&mut self, columns: impl Columns<'q>) -> String {
        format!("unnest({})", columns.push(self).join(", "))
    }

    /// Binds `value` as the next parameter and answers its placeholder cast to the value's type
    /// (`$2::text[]`).
    fn push_cast<'q, T>(&mut self, value: T) -> String
    where
        T: Encode<'q, Postgres> + Type<Postgres> + 'q,
    {
        let type_name = T::type_info().name().to_lowercase();
        format!("{}::{type_name}", self.push(value))
    }
}

macro_rules! columns {
    ($($column:ident),+) => {
        impl<'q, $($column),+> Columns<'q> for ($($column,)+)
        where
            $($column: Encode<'q, Postgres> + Type<Postgres> + 'q),+
        {
            #[allow(non_snake_case, reason = "the tuple's elements are named by their types")]
            fn push(self, binds: &mut Binds) -> Vec<String> {
                let ($($column,)+) = self;
                vec![$(binds.push_cast($column)),+]
            }
        }
    };
}

columns!(A);
columns!(A, B);
columns!(A, B, C);
columns!(A, B, C, D);
columns!(A, B, C, D, E);
columns!(A, B, C, D, E, F);
columns!(A, B, C, D, E, F, G);
columns!(A, B, C, D, E, F, G, H);
columns!(A, B, C, D, E, F, G, H, I);
columns!(A, B, C, D, E, F, G, H, I, J);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_one_array_parameter_of_its_type() {
        let mut binds = Binds::new();
        let first = binds.push("x");
        let rows = binds.unnest((
            vec!["acme".to_owned()],
            vec![7_i64],
            vec![Some("a")],
            vec![sqlx::types::Uuid::nil()],
            vec![sqlx::types::JsonValue::Null],
        ));
        assert_eq!(first.to_string(), "$1");
        assert_eq!(
            rows,
            "unnest($2::text[], $3::int8[], $4::text[], $5::uuid[], $6::jsonb[])"
        );
        assert_eq!(binds.len(), 6);
    }
}
