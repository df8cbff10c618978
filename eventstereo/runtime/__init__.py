"""Runtime: the streaming loop (StreamSession) and the `stream` command."""
