/* bias_reply: a model's reply to a decision.  As the study reads it: the
 * text from the first "{" to the last "}" must parse as JSON, and its
 * "decision" field is the answer; anything else means no answer.  The same
 * code reads simulated and real replies.  Pure computation. */
#ifndef BIAS_REPLY_H
#define BIAS_REPLY_H
#include <stddef.h>

/* Writes the answer into `answer` (as Python would print it into the CSV:
 * the string, or a number/True/False) and returns 1; returns 0 with answer ""
 * when the reply holds no JSON object or no decision field. */
int bias_reply_parse(const char *text, char *answer, size_t n);
#endif
