package password

import "context"

// Hold takes kib of g's budget until release is called, standing in for
// hashes in progress.
func (g *Gate) Hold(kib int64) (release func()) {
	if err := g.sem.Acquire(context.Background(), kib); err != nil {
		panic(err)
	}
	return func() { g.sem.Release(kib) }
}
