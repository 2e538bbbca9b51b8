/*
 * banned.h - functions that are too easy to misuse. Every .c file of the
 * project includes this header LAST (after system headers, whose declarations
 * it would otherwise break); using a banned function is then a compile error.
 * tests/integration/test_lint.sh checks that every source file includes it.
 * Use snprintf, memcpy with explicit sizes, strtol/strtoull with end checks.
 */
#ifndef ASGD_BANNED_H
#define ASGD_BANNED_H

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef gets
#define gets(x) BANNED(gets)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef atof
#define atof(x) BANNED(atof)
#undef strtok
#define strtok(x, y) BANNED(strtok)

#endif
