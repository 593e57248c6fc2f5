/* file.h: reading a whole file, and mkdir -p (file_).  The bottom layer: every
 * folder may use it.  Errors are returned with a message that names the path;
 * nothing is printed. */
#ifndef BASE_FILE_H
#define BASE_FILE_H
#include <stddef.h>
#include <stdio.h>

/* Reads the whole file at path into a malloc'd buffer (len + 1 bytes: the
 * contents, then a NUL; the contents may hold NULs of their own, *len says how
 * many bytes there are).  max > 0 refuses a file of more than max bytes.
 * Returns the buffer (free() it), or NULL with err: "PATH: No such file or
 * directory", "PATH: larger than MAX bytes", "PATH: out of memory",
 * "PATH: read error: ...".  len may be NULL. */
char *file_read_all(const char *path, size_t max, size_t *len, char *err, size_t errlen);
/* The same from an open stream (stdin, a pipe), read to its end; name is used
 * in messages.  The stream is not closed. */
char *file_read_stream(FILE *f, const char *name, size_t max, size_t *len, char *err, size_t errlen);
/* mkdir -p: creates path and the directories above it (mode 0755).  Returns 0,
 * or -1 with errno set (the path is too long: ENAMETOOLONG). */
int   file_mkdirs(const char *path);
/* Creates the directories above the file path (its parent, mkdir -p).  0 / -1. */
int   file_mkparent(const char *path);
#endif
