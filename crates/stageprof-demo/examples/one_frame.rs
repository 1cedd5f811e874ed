//! Runs the stages of one frame without profiling and prints each depth
//! source's error against the known surface.
use stageprof_demo::check::depth_error;
use stageprof_demo::kernels::Device;
use stageprof_demo::pipeline::*;
use stageprof_demo::scene::{render, Rig, Surface};

fn main() {
    let config = PipelineConfig::default();
    let rig = Rig::new(config.views, config.width, config.height);
    let surface = Surface::at_frame(0);
    let cam = &rig.cameras[0];
    let err = |d: &[f32]| {
        let m = config.width / 8;
        let e: Vec<f32> = (m..config.height - m)
            .flat_map(|y| (m..config.width - m).map(move |x| (x, y)))
            .filter_map(|(x, y)| {
                let z = d[y * config.width + x];
                z.is_finite().then(|| {
                    let p = cam.unproject(x as f32, y as f32, z);
                    (p[2] - surface.height(p[0], p[1])).abs()
                })
            })
            .collect();
        depth_error(e)
    };
    let captured: Vec<_> = rig.cameras.iter().map(|c| render(c, &surface)).collect();
    let k = kernels(Device::Cpu);
    let images = undistortion(k, &rig, &captured);
    let (n, range) = sparse_matching(&rig, &images);
    println!("sparse {n} range {range:?}");
    let pw = dense_matching(&config, &rig, &images, range);
    for (i, d) in pw.depths.iter().enumerate() {
        println!("pair {i}: {:?}", err(d));
    }
    let sweep = depth_estimation(k, &config, &rig, &images, range);
    println!("sweep: {:?}", err(&sweep));
    println!("fused: {:?}", err(&fusion(&sweep, &pw.depths)));
}
