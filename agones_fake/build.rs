//! Compiles the Agones SDK's `.proto` files (proto/, as the `agones` crate ships them) into the
//! server side of its gRPC services, with the tonic-build version the SDK's own client side was
//! generated with. Only with the feature `grpc`: without it the crate is empty and needs no
//! `protoc`.

fn main() {
    println!("cargo::rerun-if-changed=proto");
    #[cfg(feature = "grpc")]
    compile();
}

#[cfg(feature = "grpc")]
fn compile() {
    let includes = ["proto/googleapis", "proto/grpc-gateway", "proto/sdk/beta", "proto/sdk"];
    let compiled = tonic_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_protos(&["proto/sdk/sdk.proto", "proto/sdk/beta/beta.proto"], &includes);
    if let Err(e) = compiled {
        // Most often: no `protoc` (Debian: apt-get install protobuf-compiler libprotobuf-dev).
        panic!("cannot compile the Agones SDK's .proto files: {e}");
    }
}
