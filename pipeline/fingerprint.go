package pipeline

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
)

// Fingerprint hashes its parts (length-prefixed, so ("ab","c") differs from
// ("a","bc")) into a 32-character hex string. Every unit of cached work is
// keyed by the fingerprint of everything that determines its result.
func Fingerprint(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Hash64 is a fast, stable 64-bit hash of its parts (FNV-1a with separators),
// used for seeded choices such as splits, shards and RNG seeds.
func Hash64(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// Mix64 is splitmix64's finaliser. FNV's bits are poorly spread (ids that
// differ in their last characters can share low residues): mix them before
// taking a modulo or comparing hashes as a sample.
func Mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}
