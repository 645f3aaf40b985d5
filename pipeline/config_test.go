package pipeline

import (
	"fmt"
	"strings"
	"testing"
)

// Shards partition the passages: every id in exactly one shard, shares
// near 1/N even for ids that differ only in their last characters.
func TestShardsPartitionPassages(t *testing.T) {
	for _, n := range []int{2, 3, 7} {
		counts := make([]int, n)
		for d := 0; d < 3000; d++ {
			id := fmt.Sprintf("kb%04d", d)
			in := 0
			for i := 0; i < n; i++ {
				c := &Config{Shard: fmt.Sprintf("%d/%d", i, n)}
				if c.InShard(id) {
					in++
					counts[i]++
				}
			}
			if in != 1 {
				t.Fatalf("%s is in %d of %d shards", id, in, n)
			}
		}
		for i, c := range counts {
			if want := 3000 / n; c < want*8/10 || c > want*12/10 {
				t.Errorf("%d shards: shard %d has %d of 3000 ids (%v)", n, i, c, counts)
			}
		}
	}
	for _, bad := range []string{"3/3", "1", "a/2", "0/0", "-1/2"} {
		c := &Config{Shard: bad}
		if _, _, err := c.ShardOf(); err == nil || !strings.Contains(err.Error(), "--shard must be i/N") {
			t.Errorf("--shard %q: err %v", bad, err)
		}
	}
}
