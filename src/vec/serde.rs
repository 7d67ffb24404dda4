//! `Serialize` and `Deserialize` for `RemapVec<T>` (feature `serde`): the format of `Vec<T>`,
//! so the two are interchangeable in serialized data.

use super::RemapVec;
use core::fmt;
use core::marker::PhantomData;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

/// Most memory reserved from a sequence's length hint before its elements arrive (1 MiB, the
/// cap serde uses for `Vec`): a hint is a claim of the input, and a few bytes of input must not
/// reserve gigabytes. Past it the vector grows as elements actually arrive.
pub(crate) const MAX_PREALLOC_BYTES: usize = 1 << 20;

/// The capacity to reserve for a length hint: the hint, capped at [`MAX_PREALLOC_BYTES`].
fn cautious<T>(hint: Option<usize>) -> usize {
    match size_of::<T>() {
        0 => 0,
        size => hint.unwrap_or(0).min(MAX_PREALLOC_BYTES / size),
    }
}

impl<T: Serialize> Serialize for RemapVec<T> {
    /// A sequence, like `Vec<T>` (so `RemapVec<u8>` is a sequence of numbers too, not bytes).
    ///
    /// ```
    /// let v = remapvec::RemapVec::from([1, 2, 3]);
    /// assert_eq!(serde_json::to_string(&v).unwrap(), "[1,2,3]");
    /// ```
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for RemapVec<T> {
    /// A sequence, like `Vec<T>`. The format's length hint reserves at most 1 MiB of elements
    /// up front; a refused allocation is a deserialization error, not an abort.
    ///
    /// ```
    /// use remapvec::RemapVec;
    /// let v: RemapVec<String> = serde_json::from_str(r#"["a", "b"]"#).unwrap();
    /// assert_eq!(v, ["a", "b"]);
    /// ```
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(SeqVisitor(PhantomData))
    }
}

struct SeqVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
    type Value = RemapVec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RemapVec<T>, A::Error> {
        let mut v = RemapVec::try_with_capacity(cautious::<T>(seq.size_hint()))
            .map_err(de::Error::custom)?;
        while let Some(x) = seq.next_element()? {
            v.try_reserve(1).map_err(de::Error::custom)?;
            v.push(x);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error as ValueError, SeqDeserializer};

    /// Yields `items` while claiming an exact length of `claim`.
    struct Liar {
        items: std::vec::IntoIter<u64>,
        claim: usize,
    }

    impl Iterator for Liar {
        type Item = u64;
        fn next(&mut self) -> Option<u64> {
            self.items.next()
        }
        fn size_hint(&self) -> (usize, Option<usize>) {
            (self.claim, Some(self.claim))
        }
    }

    #[test]
    fn a_lying_length_hint_reserves_at_most_1_mib() {
        let claim = 1 << 40; // 8 TiB of u64
        let de = SeqDeserializer::<_, ValueError>::new(Liar {
            items: vec![1, 2, 3].into_iter(),
            claim,
        });
        let v = RemapVec::<u64>::deserialize(de).expect("three elements deserialize");
        assert_eq!(v, [1, 2, 3]);
        // A mapped vector rounds up to whole pages, nothing more.
        assert!(v.capacity() * 8 <= MAX_PREALLOC_BYTES + crate::sys::page_size());
        assert!(v.capacity() >= 3);
    }

    #[test]
    fn an_honest_hint_is_reserved_up_to_the_cap() {
        let items: Vec<u64> = (0..1000).collect();
        let de = SeqDeserializer::<_, ValueError>::new(items.clone().into_iter());
        let v = RemapVec::<u64>::deserialize(de).unwrap();
        assert_eq!(v, items);
        assert_eq!(v.capacity(), 1000, "one reservation of the hinted length");
    }

    #[test]
    fn json_round_trip_matches_vec() {
        let v: RemapVec<u32> = (0..100_000).collect(); // 400 KB: mapped
        assert!(v.is_mapped());
        let json = serde_json::to_string(&v).unwrap();
        let std_vec: Vec<u32> = (0..100_000).collect();
        assert_eq!(json, serde_json::to_string(&std_vec).unwrap());
        let back: RemapVec<u32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        let zst: RemapVec<()> = serde_json::from_str("[null, null]").unwrap();
        assert_eq!(zst.len(), 2);
        assert!(serde_json::from_str::<RemapVec<u8>>("[1, 300]").is_err());
        assert!(serde_json::from_str::<RemapVec<u8>>("{}").is_err());
    }
}
