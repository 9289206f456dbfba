/*
 * openapi_blob.S - the OpenAPI 3.1 document of the API (openapi.json),
 * compiled into the binary as the dashboard is: the assembler's .incbin
 * takes the file as it is (run from the project root), so GET
 * /openapi.json needs no generator and no network at build time.
 */
    .section .rodata
    .global openapi_json
    .global openapi_json_end
openapi_json:
    .incbin "server/api/openapi.json"
openapi_json_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
