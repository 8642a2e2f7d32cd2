# Writes ${OUT}: a C file defining `const unsigned char ${SYM}[]` and `const unsigned long ${SYM}_len`
# with the bytes of ${IN} (plus a terminating NUL not counted in the length).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* generated from ${IN} */\nconst unsigned char ${SYM}[] = {\n${body}0x00};\nconst unsigned long ${SYM}_len = ${len};\n")
