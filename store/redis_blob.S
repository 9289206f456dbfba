/*
 * redis_blob.S - the Redis Functions library (store/redis_lib.lua),
 * compiled into the binary with the assembler's .incbin (run from the
 * project root), as server/api/dashboard_blob.S does for the dashboard.
 */
    .section .rodata
    .global redis_lib_lua
    .global redis_lib_lua_end
redis_lib_lua:
    .incbin "store/redis_lib.lua"
redis_lib_lua_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
