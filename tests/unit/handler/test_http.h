/* The http handler's cmocka group (test_http.c), run by test_handler.c's main. */
#ifndef TEST_HTTP_H
#define TEST_HTTP_H

/* Runs the group; returns the number of failed tests. */
int test_http_run(void);

#endif
