package demo

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Limits that keep a demo open to anyone from holding unbounded memory.
const (
	maxUsers        = 10000
	maxNotesPerUser = 100
	maxTitleBytes   = 200
	maxTextBytes    = 10 << 10
)

// Note is one note.
type Note struct {
	ID      string    `json:"id" jsonschema:"the note's id"`
	Title   string    `json:"title" jsonschema:"the note's title"`
	Text    string    `json:"text,omitempty" jsonschema:"the note's text"`
	Created time.Time `json:"created" jsonschema:"when the note was added"`
}

// notes holds every user's notes, keyed by token subject.
type notes struct {
	mu    sync.Mutex
	now   func() time.Time
	users map[string]*userNotes
}

type userNotes struct {
	next  int
	notes []Note // in order of creation
}

var errNotFound = errors.New("no note with that id")

func newNotes(now func() time.Time) *notes {
	return &notes{now: now, users: map[string]*userNotes{}}
}

func (n *notes) list(user string) []Note {
	n.mu.Lock()
	defer n.mu.Unlock()
	u := n.users[user]
	if u == nil {
		return []Note{}
	}
	out := make([]Note, len(u.notes))
	for i, nt := range u.notes {
		out[i] = Note{ID: nt.ID, Title: nt.Title, Created: nt.Created}
	}
	return out
}

func (n *notes) get(user, id string) (Note, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if u := n.users[user]; u != nil {
		if i := slices.IndexFunc(u.notes, func(nt Note) bool { return nt.ID == id }); i >= 0 {
			return u.notes[i], nil
		}
	}
	return Note{}, errNotFound
}

func (n *notes) add(user, title, text string) (Note, error) {
	switch {
	case title == "":
		return Note{}, errors.New("a note needs a title")
	case len(title) > maxTitleBytes:
		return Note{}, fmt.Errorf("the title is longer than %d bytes", maxTitleBytes)
	case len(text) > maxTextBytes:
		return Note{}, fmt.Errorf("the text is longer than %d bytes", maxTextBytes)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	u := n.users[user]
	if u == nil {
		if len(n.users) >= maxUsers {
			return Note{}, errors.New("the demo server is full")
		}
		u = &userNotes{}
		n.users[user] = u
	}
	if len(u.notes) >= maxNotesPerUser {
		return Note{}, fmt.Errorf("you have %d notes, the most this demo keeps", maxNotesPerUser)
	}
	u.next++
	nt := Note{ID: strconv.Itoa(u.next), Title: title, Text: text, Created: n.now().UTC().Truncate(time.Second)}
	u.notes = append(u.notes, nt)
	return nt, nil
}

func (n *notes) remove(user, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if u := n.users[user]; u != nil {
		if i := slices.IndexFunc(u.notes, func(nt Note) bool { return nt.ID == id }); i >= 0 {
			u.notes = slices.Delete(u.notes, i, i+1)
			return nil
		}
	}
	return errNotFound
}
