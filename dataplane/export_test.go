package dataplane

// setNextStreamID sets the next stream id c opens (client role).
func setNextStreamID(c *Conn, id uint32) {
	c.mu.Lock()
	c.nextStreamID = id
	c.mu.Unlock()
}
